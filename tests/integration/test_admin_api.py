"""The admin and manager APIs on the real stack: training content, people and teams,
courses, and analytics; each write audited, each company kept apart."""

from __future__ import annotations

import uuid

import httpx
import pytest

from tests.integration.wsclient import connect, drain, recv, send_turn

pytestmark = pytest.mark.integration

TRAINEE = {"X-Dev-Tenant": "demo", "X-Dev-User": "trainee@demo.salesboost.local"}
PASSWORD = "a long and unguessable test passphrase"


def _suffix() -> str:
    return uuid.uuid4().hex[:8]


@pytest.fixture
def http(base_url):
    with httpx.Client(base_url=base_url, timeout=60) as client:
        yield client


def _persona(slug: str) -> dict:
    return {
        "slug": slug,
        "name": "Ana Ortiz",
        "role": "Head of Operations",
        "company": "Globex",
        "personality": "Warm but busy.",
        "objections": ["We just renewed our current tool"],
        "topics": ["operations", "rollout"],
    }


def _rubric(slug: str) -> dict:
    return {
        "slug": slug,
        "name": "Quick check",
        "pass_score": 50,
        "criteria": [
            {
                "skill": "questioning",
                "name": "Asks questions",
                "checks": [{"question": "A question?", "kind": "questions", "min_count": 1}],
            }
        ],
    }


def test_content_is_created_read_updated_and_deleted_with_validation(http, demo_admin, rival_admin):
    tag = _suffix()
    persona, rubric, scenario = f"ana-{tag}", f"quick-{tag}", f"ops-call-{tag}"
    assert http.post("/v1/personas", json=_persona(persona), headers=demo_admin).status_code == 201
    assert http.post("/v1/personas", json=_persona(persona), headers=demo_admin).status_code == 409
    assert http.post("/v1/rubrics", json=_rubric(rubric), headers=demo_admin).status_code == 201
    bad_rubric = {
        **_rubric(f"bad-{tag}"),
        "criteria": [
            {
                "skill": "x",
                "name": "x",
                "checks": [{"question": "Regex?", "kind": "pattern", "pattern": "(unclosed"}],
            }
        ],
    }
    refused = http.post("/v1/rubrics", json=bad_rubric, headers=demo_admin)
    assert refused.status_code == 422 and refused.json()["error"]["code"] == "invalid_request"
    spec = {
        "slug": scenario,
        "title": "Ops call",
        "product": "CloudCRM",
        "description": "Intro call.",
        "rubric": rubric,
        "personas": [persona],
    }
    unknown = http.post("/v1/scenarios", json={**spec, "personas": ["nobody"]}, headers=demo_admin)
    assert unknown.status_code == 422 and unknown.json()["error"]["code"] == "unknown_reference"
    assert http.post("/v1/scenarios", json=spec, headers=demo_admin).status_code == 201
    assert http.get(f"/v1/scenarios/{scenario}", headers=demo_admin).json()["rubric"] == rubric
    assert scenario in {s["slug"] for s in http.get("/v1/scenarios", headers=TRAINEE).json()}

    changed = {**_persona(persona), "personality": "Curt."}
    assert http.put(f"/v1/personas/{persona}", json=changed, headers=demo_admin).status_code == 200
    assert http.get(f"/v1/personas/{persona}", headers=demo_admin).json()["personality"] == "Curt."
    wrong_slug = http.put(f"/v1/personas/{persona}", json=_persona("other"), headers=demo_admin)
    assert wrong_slug.status_code == 422

    in_use = http.delete(f"/v1/personas/{persona}", headers=demo_admin)
    assert in_use.status_code == 409 and in_use.json()["error"]["code"] == "persona_in_use"
    session = http.post("/v1/sessions", json={"scenario": scenario}, headers=TRAINEE)
    assert session.status_code == 201
    kept = http.delete(f"/v1/scenarios/{scenario}", headers=demo_admin)
    assert kept.status_code == 409 and kept.json()["error"]["code"] == "scenario_in_use"

    # Trainees do not edit content; another company sees none of it.
    assert http.post("/v1/personas", json=_persona(f"t-{tag}"), headers=TRAINEE).status_code == 403
    assert http.get(f"/v1/personas/{persona}", headers=rival_admin).status_code == 404
    assert http.delete(f"/v1/rubrics/{rubric}", headers=rival_admin).status_code == 404
    actions = {e["action"] for e in http.get("/v1/audit-events", headers=demo_admin).json()}
    assert {"persona.create", "rubric.create", "scenario.create", "persona.update"} <= actions


def test_an_invited_person_sets_a_password_once_and_can_be_deactivated(http, demo_admin):
    email = f"new-{_suffix()}@demo.salesboost.local"
    invited = http.post(
        "/v1/users/invite",
        json={"email": email, "display_name": "New Person", "role": "trainee"},
        headers=demo_admin,
    )
    assert invited.status_code == 201, invited.text
    body = invited.json()
    assert body["user"]["invited"] is True
    again = http.post(
        "/v1/users/invite", json={"email": email, "display_name": "x"}, headers=demo_admin
    )
    assert again.status_code == 409
    accept = {"invitation_token": body["invitation_token"], "password": PASSWORD}
    signed_in = http.post("/v1/auth/accept-invite", json=accept)
    assert signed_in.status_code == 200, signed_in.text
    assert http.post("/v1/auth/accept-invite", json=accept).status_code == 401  # used
    forged = {"invitation_token": "inv.00.xx", "password": PASSWORD}
    assert http.post("/v1/auth/accept-invite", json=forged).status_code == 401

    login = {"tenant": "demo", "email": email, "password": PASSWORD}
    assert http.post("/v1/auth/login", json=login).status_code == 200
    user_id = body["user"]["id"]
    promoted = http.patch(f"/v1/users/{user_id}", json={"role": "manager"}, headers=demo_admin)
    assert promoted.json()["role"] == "manager"
    off = http.patch(f"/v1/users/{user_id}", json={"active": False}, headers=demo_admin)
    assert off.status_code == 200 and off.json()["active"] is False
    assert http.post("/v1/auth/login", json=login).status_code == 401
    refresh = {"refresh_token": signed_in.json()["refresh_token"]}
    assert http.post("/v1/auth/refresh", json=refresh).status_code == 401

    me = http.get("/v1/me", headers=demo_admin).json()["user_id"]
    locked = http.patch(f"/v1/users/{me}", json={"role": "trainee"}, headers=demo_admin)
    assert locked.status_code == 409 and locked.json()["error"]["code"] == "self_lockout"


def test_a_csv_import_reports_each_row(http, demo_admin):
    tag = _suffix()
    team = f"Imports {tag}"
    assert http.post("/v1/teams", json={"name": team}, headers=demo_admin).status_code == 201
    csv = (
        "email,display_name,role,team\n"
        f"a-{tag}@demo.salesboost.local,Ann,trainee,{team}\n"
        "trainee@demo.salesboost.local,Dana,trainee,\n"
        f"not-an-email,Bob,trainee,\n"
        f"c-{tag}@demo.salesboost.local,Cy,overlord,\n"
        f"d-{tag}@demo.salesboost.local,Di,trainee,No Such Team\n"
    )
    response = http.post(
        "/v1/users/import", files={"file": ("people.csv", csv, "text/csv")}, headers=demo_admin
    )
    assert response.status_code == 200, response.text
    report = response.json()
    assert [r["status"] for r in report["rows"]] == [
        "created",
        "exists",
        "invalid",
        "invalid",
        "invalid",
    ]
    assert (report["created"], report["exists"], report["invalid"]) == (1, 1, 3)
    assert [r["row"] for r in report["rows"]] == [2, 3, 4, 5, 6]
    assert report["rows"][0]["invitation_token"].startswith("inv.")
    assert "role" in report["rows"][3]["error"] and "team" in report["rows"][4]["error"]
    teams = {t["name"]: t for t in http.get("/v1/teams", headers=demo_admin).json()}
    assert len(teams[team]["members"]) == 1
    headerless = http.post(
        "/v1/users/import", files={"file": ("x.csv", "a,b\n1,2\n", "text/csv")}, headers=demo_admin
    )
    assert headerless.status_code == 422
    binary = http.post(
        "/v1/users/import",
        files={"file": ("x.csv", b"\xff\xfe\x00", "text/csv")},
        headers=demo_admin,
    )
    assert binary.status_code == 422
    assert (
        http.post(
            "/v1/users/import", files={"file": ("x.csv", csv, "text/csv")}, headers=TRAINEE
        ).status_code
        == 403
    )


def test_a_teams_members_are_added_and_removed_by_admins_only(http, demo_admin, rival_admin):
    tag = _suffix()
    people = []
    for name in ("Ada", "Bo"):
        invited = http.post(
            "/v1/users/invite",
            json={"email": f"{name.lower()}-{tag}@demo.salesboost.local", "display_name": name},
            headers=demo_admin,
        )
        assert invited.status_code == 201, invited.text
        people.append(invited.json()["user"]["id"])
    ada, bo = people
    name = f"Members {tag}"
    created = http.post("/v1/teams", json={"name": name}, headers=demo_admin)
    assert created.status_code == 201 and created.json()["members"] == []
    team = created.json()["id"]
    again = http.post("/v1/teams", json={"name": name}, headers=demo_admin)
    assert again.status_code == 409 and again.json()["error"]["code"] == "team_exists"
    control = http.post("/v1/teams", json={"name": "a\nb"}, headers=demo_admin)
    assert control.status_code == 422 and control.json()["error"]["message"].startswith("body.name")

    def members(user_ids: list[str], headers: dict = demo_admin) -> httpx.Response:
        return http.put(f"/v1/teams/{team}/members", json={"user_ids": user_ids}, headers=headers)

    assert members([ada, bo, ada]).json()["members"] == [ada, bo]  # added (once each)
    assert members([bo]).json()["members"] == [bo]  # Ada taken off
    listed = {t["id"]: t for t in http.get("/v1/teams", headers=demo_admin).json()}
    assert listed[team]["members"] == [bo]
    users = {u["id"]: u for u in http.get("/v1/users", headers=demo_admin).json()}
    assert users[bo]["teams"] == [name] and users[ada]["teams"] == []
    unknown = members([bo, str(uuid.uuid4())])
    assert unknown.status_code == 422 and unknown.json()["error"]["code"] == "unknown_user"
    gone = http.put(f"/v1/teams/{uuid.uuid4()}/members", json={"user_ids": []}, headers=demo_admin)
    assert gone.status_code == 404 and gone.json()["error"]["code"] == "team_not_found"
    too_many = members([str(uuid.uuid4()) for _ in range(1001)])
    assert too_many.status_code == 422 and too_many.json()["error"]["code"] == "invalid_request"
    manager = {"X-Dev-Tenant": "demo", "X-Dev-User": "manager@demo.salesboost.local"}
    assert members([], manager).status_code == 403
    assert http.post("/v1/teams", json={"name": f"M {tag}"}, headers=manager).status_code == 403
    assert members([], rival_admin).status_code == 404
    assert [
        t["members"] for t in http.get("/v1/teams", headers=demo_admin).json() if t["id"] == team
    ] == [[bo]]
    audited = http.get("/v1/audit-events", params={"target": name}, headers=demo_admin).json()
    assert [e["action"] for e in audited] == ["team.members", "team.members", "team.create"]


def test_a_compliance_rule_is_tried_on_a_sentence_before_it_is_saved(http, demo_admin):
    tag = _suffix()
    manager = {"X-Dev-Tenant": "demo", "X-Dev-User": "manager@demo.salesboost.local"}

    def tried(rule: dict, sentence: str, headers: dict = demo_admin) -> httpx.Response:
        rule = {"slug": f"tried-{tag}", "description": "No guaranteed results.", **rule}
        body = {"rule": rule, "sentence": sentence}
        return http.post("/v1/compliance-rules/try", json=body, headers=headers)

    forbidden = {"pattern": r"(?i)\bguarantee[ds]?\b"}
    broken = tried(forbidden, "Hi Priya. We guarantee a 30% uplift in year one!")
    assert broken.status_code == 200, broken.text
    (finding,) = broken.json()["findings"]
    assert finding["rule"] == f"tried-{tag}" and finding["decided_by"] == "rule"
    assert finding["excerpt"] == "We guarantee a 30% uplift in year one!"
    assert finding["speaker"] == "trainee" and finding["severity"] == "warning"
    assert tried(forbidden, "We expect an uplift.", manager).json()["findings"] == []
    disclosure = {"kind": "disclosure", "trigger": r"\d+ ?EUR", "pattern": "(?i)vat"}
    assert tried(disclosure, "It is 40 EUR a seat.").json()["findings"]
    assert tried(disclosure, "It is 40 EUR a seat, before VAT.").json()["findings"] == []

    # Semantic: the same embedder as a session, with how close the sentence came.
    pressure = {
        "kind": "semantic",
        "threshold": 0.62,
        "examples": ["This price is only valid if you sign today."],
        "applies_to": ["npc", "trainee"],
    }
    near = tried(pressure, "Sure. This price only holds if you sign today.")
    assert near.status_code == 200, near.text
    (finding,) = near.json()["findings"]
    assert finding["decided_by"] == "semantic" and finding["similarity"] >= 0.62
    assert finding["excerpt"] == "This price only holds if you sign today."
    assert finding["speaker"] == "npc"  # as said by the rule's first party
    assert tried(pressure, "Which tools does your team use today?").json()["findings"] == []

    for kind in ("judge", "knowledge_claims"):
        refused = tried({"kind": kind}, "We guarantee it.")
        assert refused.status_code == 422, refused.text
        assert refused.json()["error"]["code"] == "rule_not_tryable"
        assert kind in refused.json()["error"]["message"]
    bad_regex = tried({"pattern": "(unclosed"}, "x")
    assert bad_regex.status_code == 422
    assert bad_regex.json()["error"]["message"].startswith("body.rule.pattern")
    too_long = tried(forbidden, "x" * 2001)
    assert too_long.json()["error"]["message"].startswith("body.sentence")
    assert tried(forbidden, "We guarantee it.", TRAINEE).status_code == 403
    # Nothing was stored or audited.
    assert http.get(f"/v1/compliance-rules/tried-{tag}", headers=demo_admin).status_code == 404
    audited = http.get("/v1/audit-events", params={"target": f"tried-{tag}"}, headers=demo_admin)
    assert audited.json() == []


async def test_courses_set_the_mode_and_show_progress_and_analytics_follow_teams(
    base_url, demo_admin
):
    tag = _suffix()
    manager = {"X-Dev-Tenant": "demo", "X-Dev-User": "manager@demo.salesboost.local"}
    async with httpx.AsyncClient(base_url=base_url, timeout=60) as http:
        me = (await http.get("/v1/me", headers=TRAINEE)).json()["user_id"]
        boss = (await http.get("/v1/me", headers=manager)).json()["user_id"]
        team = (
            await http.post("/v1/teams", json={"name": f"Team {tag}"}, headers=demo_admin)
        ).json()
        put = await http.put(
            f"/v1/teams/{team['id']}/members", json={"user_ids": [me, boss]}, headers=demo_admin
        )
        assert put.status_code == 200
        course = {
            "slug": f"onboarding-{tag}",
            "title": "Onboarding",
            "pass_score": 50,
            "mode": "assessment",
            "scenarios": ["crm-discovery-call"],
        }
        assert (await http.post("/v1/courses", json=course, headers=demo_admin)).status_code == 201
        start = {"scenario": "crm-discovery-call", "course": course["slug"]}
        draft = await http.post("/v1/sessions", json=start, headers=TRAINEE)
        assert draft.status_code == 409 and draft.json()["error"]["code"] == "course_not_open"
        published = {**course, "status": "published"}
        await http.put(f"/v1/courses/{course['slug']}", json=published, headers=demo_admin)
        not_mine = await http.post("/v1/sessions", json=start, headers=TRAINEE)
        assert not_mine.status_code == 403
        assignment = {"team": f"Team {tag}", "due_at": "2030-01-31T17:00:00Z"}
        assigned = await http.post(
            f"/v1/courses/{course['slug']}/assignments", json=assignment, headers=demo_admin
        )
        assert assigned.status_code == 201
        mine = [
            c
            for c in (await http.get("/v1/me/courses", headers=TRAINEE)).json()
            if c["slug"] == course["slug"]
        ]
        assert mine and mine[0]["scenarios"][0]["best_score"] is None
        created = await http.post("/v1/sessions", json=start, headers=TRAINEE)
        assert created.status_code == 201 and created.json()["mode"] == "assessment"
        session_id = created.json()["id"]

    async with connect(base_url, session_id) as ws:
        events = await send_turn(ws, "Hi Priya, what is your budget and who signs?")
        events += await drain(ws, quiet_s=5)
        assert not [e for e in events if e["type"] == "hint"]  # assessment: the coach is quiet
        await ws.send('{"type": "end"}')
        score = await recv(ws)
    assert score["type"] == "score"

    async with httpx.AsyncClient(base_url=base_url, timeout=60) as http:
        progress = [
            c
            for c in (await http.get("/v1/me/courses", headers=TRAINEE)).json()
            if c["slug"] == course["slug"]
        ][0]
        assert progress["scenarios"][0]["best_score"] == score["report"]["score"]
        trend = await http.get(f"/v1/analytics/trainees/{me}/skills", headers=manager)
        assert trend.status_code == 200
        skills = {s["skill"]: s for s in trend.json()["skills"]}
        assert "qualification" in skills and skills["qualification"]["points"]
        overview = (await http.get("/v1/analytics/overview", headers=manager)).json()
        assert overview["sessions"] >= 1 and overview["scored"] >= 1
        heatmap = (await http.get("/v1/analytics/heatmap", headers=manager)).json()
        assert f"Team {tag}" in heatmap["teams"]
        row = heatmap["averages"][heatmap["teams"].index(f"Team {tag}")]
        assert len(row) == len(heatmap["skills"])
        # A trainee sees only their own trend; the rival company sees nothing of ours.
        assert (await http.get("/v1/analytics/overview", headers=TRAINEE)).status_code == 403
        stranger = str(uuid.uuid4())
        assert (
            await http.get(f"/v1/analytics/trainees/{stranger}/skills", headers=manager)
        ).status_code == 404
        report = await http.get(f"/v1/sessions/{session_id}/report", headers=manager)
        assert report.status_code == 200  # the manager's team
        turns = (await http.get(f"/v1/sessions/{session_id}", headers=manager)).json()["turns"]
        assert turns[0]["speaker"] == "trainee"
