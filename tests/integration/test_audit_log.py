"""Admin actions land in an append-only audit log that only the company's admins can read."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError

from db.engine import create_engine, session_factory, tenant_transaction


def test_knowledge_admin_actions_are_audited_with_actor_and_request_id(
    base_url, demo_admin, rival_admin
):
    name = f"audit-{uuid.uuid4().hex[:6]}.md"
    with httpx.Client(base_url=base_url, headers=demo_admin, timeout=120) as http:
        created = http.post(
            "/v1/knowledge-bases/tests-audit/documents",
            files={"file": (name, f"# Audit\n\n{uuid.uuid4()} notes.".encode())},
        )
        assert created.status_code == 201, created.text
        deleted = http.delete(f"/v1/knowledge-bases/tests-audit/documents/{created.json()['id']}")
        assert deleted.status_code == 204
        me = http.get("/v1/me").json()
        events = http.get("/v1/audit-events", params={"limit": 20}).json()
    mine = [e for e in events if e["target"] == f"tests-audit/{name}"]
    assert [e["action"] for e in mine] == ["knowledge.document.delete", "knowledge.document.upload"]
    assert all(e["actor_user_id"] == me["user_id"] and e["request_id"] for e in mine)
    assert mine[1]["request_id"] == created.headers["x-request-id"]
    with httpx.Client(base_url=base_url, headers=rival_admin, timeout=30) as rival:
        theirs = rival.get("/v1/audit-events").json()
    assert all(e["target"] != f"tests-audit/{name}" for e in theirs)


def test_the_server_filters_the_audit_log(base_url, demo_admin):
    tag = uuid.uuid4().hex[:6]
    with httpx.Client(base_url=base_url, headers=demo_admin, timeout=30) as http:
        me = http.get("/v1/me").json()["user_id"]
        assert http.post("/v1/teams", json={"name": f"Audit {tag}"}).status_code == 201

        def events(**params) -> list[dict]:
            response = http.get("/v1/audit-events", params=params)
            assert response.status_code == 200, response.text
            return response.json()

        team_creations = events(action="team.create", limit=500)
        assert team_creations and {e["action"] for e in team_creations} == {"team.create"}
        mine = events(actor=me, target=f"AUDIT {tag}")  # contains, in any case
        assert [(e["action"], e["target"]) for e in mine] == [("team.create", f"Audit {tag}")]
        at = datetime.fromisoformat(mine[0]["created_at"])
        second = timedelta(seconds=1)
        window = {"from": at.isoformat(), "to": (at + second).isoformat()}
        assert events(target=tag, **window) == mine  # from is inclusive
        assert events(target=tag, to=at.isoformat()) == []  # to is not
        assert events(target=tag, **{"from": (at + second).isoformat()}) == []
        naive = (at - second).astimezone(UTC).replace(tzinfo=None).isoformat()
        assert events(target=tag, **{"from": naive}) == mine  # without a zone: UTC
        assert events(target=tag, actor=str(uuid.uuid4())) == []
        assert events(target=f"{tag}%") == []  # LIKE's wildcards are plain characters
        for bad in (
            {"action": "Team Create"},
            {"action": "x" * 65},
            {"actor": "me"},
            {"target": "a\x00b"},
            {"target": "x" * 301},
            {"from": "yesterday"},
            {"from": "0001-01-01T00:00:00Z"},
            {"to": "9999-12-31T23:00:00-14:00"},
            {"from": "2026-01-02T00:00:00Z", "to": "2026-01-02T00:00:00Z"},
        ):
            refused = http.get("/v1/audit-events", params=bad)
            assert refused.status_code == 422, (bad, refused.text)
            assert refused.json()["error"]["code"] == "invalid_request"
        assert refused.json()["error"]["message"] == "query.to: must be later than from"


def test_only_admins_read_the_audit_log(base_url):
    manager = {"X-Dev-Tenant": "demo", "X-Dev-User": "manager@demo.salesboost.local"}
    with httpx.Client(base_url=base_url, headers=manager, timeout=30) as http:
        assert http.get("/v1/audit-events").status_code == 403
        assert http.get("/v1/audit-events", params={"limit": 0}).status_code in (403, 422)


async def test_the_app_role_cannot_rewrite_or_erase_the_audit_log(app_db_url, owner_db_url):
    engine = sa.create_engine(owner_db_url)
    with engine.connect() as conn:
        demo = conn.execute(sa.text("SELECT id FROM tenants WHERE slug = 'demo'")).scalar_one()
    engine.dispose()
    app_engine = create_engine(app_db_url, pool_size=1)
    sessions = session_factory(app_engine)
    try:
        for statement in ["UPDATE audit_events SET action = 'x'", "DELETE FROM audit_events"]:
            with pytest.raises(DBAPIError, match="permission denied"):
                async with tenant_transaction(sessions, demo) as session:
                    await session.execute(sa.text(statement))
    finally:
        await app_engine.dispose()
