"""Inviting people from a CSV file (unit: the use case, without FastAPI or a database, with a
fake inviter; the real one, on the stack, in tests/integration/test_admin_api.py)."""

from __future__ import annotations

import pytest
from sqlalchemy.exc import IntegrityError

from serve_apps.gateway.errors import APIError
from serve_apps.gateway.schemas.people import InviteRequest
from serve_apps.gateway.use_cases.people import MAX_IMPORT_BYTES, MAX_IMPORT_ROWS, import_people


class FakeInviter:
    """Invites whom it is given, except the emails it already has and the teams it lacks."""

    def __init__(self, existing: set[str] = frozenset(), teams: set[str] = frozenset()) -> None:
        self.existing = set(existing)
        self.teams = set(teams)
        self.invited: list[InviteRequest] = []

    async def __call__(self, spec: InviteRequest) -> str:
        if spec.email.lower() in self.existing:
            raise IntegrityError("INSERT INTO users", {}, Exception("duplicate key"))
        if missing := sorted(set(spec.teams) - self.teams):
            raise APIError(422, "unknown_team", f"no such teams: {missing}")
        self.invited.append(spec)
        self.existing.add(spec.email.lower())
        return f"token-{len(self.invited)}"


async def test_each_row_is_created_already_there_or_refused_with_the_reason():
    csv = (
        "\ufeffemail,display_name,role,team\n"
        "ann@acme.example,Ann,Manager,East\n"
        "bob@acme.example,Bob,,\n"
        "old@acme.example,Old,trainee,\n"
        "not-an-email,Nobody,trainee,\n"
        "cy@acme.example,Cy,trainee,West\n"
        "ann@acme.example,Ann again,trainee,\n"
    )
    inviter = FakeInviter(existing={"old@acme.example"}, teams={"East"})
    report = await import_people(csv.encode(), inviter)

    assert (report.created, report.exists, report.invalid) == (2, 2, 2)
    assert [(r.row, r.status) for r in report.rows] == [
        (2, "created"),
        (3, "created"),
        (4, "exists"),
        (5, "invalid"),
        (6, "invalid"),
        (7, "exists"),
    ]
    assert [r.invitation_token for r in report.rows[:2]] == ["token-1", "token-2"]
    assert report.rows[3].error.startswith("email:")
    assert report.rows[4].error == "no such teams: ['West']"
    ann, bob = inviter.invited
    assert (ann.role, ann.teams) == ("manager", ["East"])
    assert (bob.role, bob.teams) == ("trainee", [])


@pytest.mark.parametrize(
    ("data", "status", "message"),
    [
        (b"\xff\xfe not text", 422, "not UTF-8"),
        (b"name,role\nAnn,trainee\n", 422, "the header must name"),
        (b"email,display_name\n" + b"a@b.example,A\n" * (MAX_IMPORT_ROWS + 1), 422, "at most"),
        (b"x" * (MAX_IMPORT_BYTES + 1), 413, "limited to"),
    ],
    ids=["binary", "header", "rows", "size"],
)
async def test_a_file_that_is_no_import_is_refused_whole(data, status, message):
    with pytest.raises(APIError) as refused:
        await import_people(data, FakeInviter())
    assert refused.value.status == status and message in refused.value.message
