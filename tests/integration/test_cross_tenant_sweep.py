"""Every route that takes an id or a slug, called by another company's admin and trainee
with this company's ids: nothing is read, nothing is written (a 4xx every time), and this
company's data is unchanged afterwards.

The routes come from the OpenAPI document, so a new route with a path parameter is swept
too (and fails here until it has a request below).
"""

from __future__ import annotations

import uuid

import httpx
import pytest

pytestmark = pytest.mark.integration

TRAINEE = {"X-Dev-Tenant": "demo", "X-Dev-User": "trainee@demo.salesboost.local"}


@pytest.fixture(scope="module")
def demo_things(base_url, demo_admin) -> dict[str, str]:
    """Things only the demo company has, made through its own API."""
    tag = uuid.uuid4().hex[:6]
    with httpx.Client(base_url=base_url, timeout=60, headers=demo_admin) as http:
        persona = f"sweep-persona-{tag}"
        http.post(
            "/v1/personas",
            json={
                "slug": persona,
                "name": "P",
                "role": "R",
                "company": "C",
                "personality": "calm",
            },
        ).raise_for_status()
        rubric = f"sweep-rubric-{tag}"
        http.post(
            "/v1/rubrics",
            json={
                "slug": rubric,
                "name": "R",
                "criteria": [
                    {
                        "skill": "s",
                        "name": "S",
                        "checks": [{"question": "Asked?", "kind": "questions"}],
                    }
                ],
            },
        ).raise_for_status()
        rule = f"sweep-rule-{tag}"
        http.post(
            "/v1/compliance-rules",
            json={
                "slug": rule,
                "description": "No foo",
                "pattern": "foo",
            },
        ).raise_for_status()
        scenario = f"sweep-scenario-{tag}"
        http.post(
            "/v1/scenarios",
            json={
                "slug": scenario,
                "title": "T",
                "product": "P",
                "description": "D",
                "personas": [persona],
                "rubric": rubric,
            },
        ).raise_for_status()
        course = f"sweep-course-{tag}"
        http.post(
            "/v1/courses",
            json={
                "slug": course,
                "title": "C",
                "scenarios": [scenario],
                "status": "published",
            },
        ).raise_for_status()
        team = http.post("/v1/teams", json={"name": f"Sweep {tag}"}).json()["id"]
        trainee = http.get("/v1/me", headers=TRAINEE).json()["user_id"]
        http.put(f"/v1/teams/{team}/members", json={"user_ids": [trainee]}).raise_for_status()
        session = http.post(
            "/v1/sessions", json={"scenario": "crm-discovery-call"}, headers=TRAINEE
        ).json()["id"]
        documents = http.get("/v1/knowledge-bases/product").json()["documents"]
    return {
        "persona": persona,
        "rubric": rubric,
        "rule": rule,
        "scenario": scenario,
        "course": course,
        "team": team,
        "trainee": trainee,
        "session": session,
        "document": documents[0]["id"],
        "tag": tag,
    }


def _requests(things: dict[str, str]) -> dict[tuple[str, str], tuple[str, dict | None]]:
    """(method, path template) → (concrete path, a body valid apart from whose ids it names)."""
    persona_body = {
        "slug": things["persona"],
        "name": "X",
        "role": "X",
        "company": "X",
        "personality": "hijacked",
    }
    return {
        ("get", "/v1/sessions/{session_id}"): (f"/v1/sessions/{things['session']}", None),
        ("post", "/v1/sessions/{session_id}/end"): (f"/v1/sessions/{things['session']}/end", None),
        ("get", "/v1/sessions/{session_id}/report"): (
            f"/v1/sessions/{things['session']}/report",
            None,
        ),
        ("get", "/v1/sessions/{session_id}/review"): (
            f"/v1/sessions/{things['session']}/review",
            None,
        ),
        ("post", "/v1/sessions/{session_id}/review/comments"): (
            f"/v1/sessions/{things['session']}/review/comments",
            {"seq": 1, "text": "hijacked"},
        ),
        ("put", "/v1/sessions/{session_id}/review/score"): (
            f"/v1/sessions/{things['session']}/review/score",
            {"score": 1, "reason": "hijacked"},
        ),
        ("get", "/v1/personas/{slug}"): (f"/v1/personas/{things['persona']}", None),
        ("put", "/v1/personas/{slug}"): (f"/v1/personas/{things['persona']}", persona_body),
        ("delete", "/v1/personas/{slug}"): (f"/v1/personas/{things['persona']}", None),
        ("get", "/v1/rubrics/{slug}"): (f"/v1/rubrics/{things['rubric']}", None),
        ("put", "/v1/rubrics/{slug}"): (
            f"/v1/rubrics/{things['rubric']}",
            {
                "slug": things["rubric"],
                "name": "X",
                "criteria": [
                    {
                        "skill": "s",
                        "name": "S",
                        "checks": [{"question": "Asked?", "kind": "questions"}],
                    }
                ],
            },
        ),
        ("delete", "/v1/rubrics/{slug}"): (f"/v1/rubrics/{things['rubric']}", None),
        ("get", "/v1/compliance-rules/{slug}"): (f"/v1/compliance-rules/{things['rule']}", None),
        ("put", "/v1/compliance-rules/{slug}"): (
            f"/v1/compliance-rules/{things['rule']}",
            {"slug": things["rule"], "description": "No bar", "pattern": "x"},
        ),
        ("delete", "/v1/compliance-rules/{slug}"): (f"/v1/compliance-rules/{things['rule']}", None),
        ("get", "/v1/scenarios/{slug}"): (f"/v1/scenarios/{things['scenario']}", None),
        ("put", "/v1/scenarios/{slug}"): (
            f"/v1/scenarios/{things['scenario']}",
            {
                "slug": things["scenario"],
                "title": "X",
                "product": "X",
                "description": "X",
                "personas": ["skeptical-it-director"],
            },
        ),
        ("delete", "/v1/scenarios/{slug}"): (f"/v1/scenarios/{things['scenario']}", None),
        ("get", "/v1/courses/{slug}"): (f"/v1/courses/{things['course']}", None),
        ("put", "/v1/courses/{slug}"): (
            f"/v1/courses/{things['course']}",
            {"slug": things["course"], "title": "X", "scenarios": ["crm-discovery-call"]},
        ),
        ("get", "/v1/courses/{slug}/assignments"): (
            f"/v1/courses/{things['course']}/assignments",
            None,
        ),
        ("post", "/v1/courses/{slug}/assignments"): (
            f"/v1/courses/{things['course']}/assignments",
            {"user_id": things["trainee"]},
        ),
        ("patch", "/v1/users/{user_id}"): (
            f"/v1/users/{things['trainee']}",
            {"display_name": "hijacked"},
        ),
        ("put", "/v1/teams/{team_id}/members"): (
            f"/v1/teams/{things['team']}/members",
            {"user_ids": []},
        ),
        ("get", "/v1/analytics/trainees/{user_id}/skills"): (
            f"/v1/analytics/trainees/{things['trainee']}/skills",
            None,
        ),
        ("delete", "/v1/knowledge-bases/{knowledge_base}/documents/{document_id}"): (
            f"/v1/knowledge-bases/product/documents/{things['document']}",
            None,
        ),
        # The platform's models: only the model admins' company may change them, and compare
        # them on its own rows.
        ("post", "/v1/models/{role}/swap"): ("/v1/models/npc/swap", {"config": _candidate()}),
        ("post", "/v1/models/{role}/canary"): (
            "/v1/models/npc/canary",
            {"config": _candidate(), "share": 20},
        ),
        ("post", "/v1/models/{role}/promote"): ("/v1/models/npc/promote", None),
        ("post", "/v1/models/{role}/rollback"): ("/v1/models/npc/rollback", None),
        ("get", "/v1/models/{role}/compare"): ("/v1/models/npc/compare", None),
        # A replay reads the caller's company's sessions only; its report is that company's
        # (test_model_replay.py reads a real one as another company).
        ("post", "/v1/models/{role}/replay"): (
            "/v1/models/npc/replay",
            {"config": _candidate(), "sessions": 2},
        ),
        ("get", "/v1/models/replays/{replay_id}"): (
            f"/v1/models/replays/{uuid.uuid4().hex}",
            None,
        ),
    }


def _candidate() -> dict:
    import yaml

    from serve_apps.app import resolve_model_config

    return yaml.safe_load(resolve_model_config("npc_cpu_candidate").read_text())


# Routes whose path names only the caller's own company's things (a knowledge base by its
# name: each company has its own, so another company's "product" is not ours).
OWN_COMPANY_ONLY = {
    "/v1/knowledge-bases/{knowledge_base}",
    "/v1/knowledge-bases/{knowledge_base}/documents",
    "/v1/knowledge-bases/{knowledge_base}/search",
    "/v1/knowledge-bases/{knowledge_base}/reindex",
    "/v1/knowledge-bases/{knowledge_base}/versions/{version}/activate",
}


@pytest.mark.parametrize("role", ["admin", "manager", "trainee"])
def test_another_company_reaches_nothing_of_ours_by_any_route(
    base_url, demo_things, demo_admin, rival_admin, rival_manager, second_tenant, role
):
    rival = {"admin": rival_admin, "manager": rival_manager, "trainee": second_tenant}[role]
    requests = _requests(demo_things)
    with httpx.Client(base_url=base_url, timeout=60) as http:
        spec = http.get("/openapi.json").json()
        swept = 0
        for path, operations in spec["paths"].items():
            if "{" not in path or path in OWN_COMPANY_ONLY:
                continue
            for method in operations:
                assert (method, path) in requests, f"no cross-company request for {method} {path}"
                concrete, body = requests[(method, path)]
                response = http.request(method, concrete, json=body, headers=rival)
                assert 400 <= response.status_code < 500, (method, concrete, response.text)
                assert response.status_code != 422 or body is None, (
                    method,
                    concrete,
                    response.text,
                )
                swept += 1
        assert swept == len(requests)

        # Our company's things are as they were.
        assert (
            http.get(f"/v1/personas/{demo_things['persona']}", headers=demo_admin).json()[
                "personality"
            ]
            == "calm"
        )
        assert (
            http.get(f"/v1/sessions/{demo_things['session']}", headers=TRAINEE).json()["status"]
            == "active"
        )
        teams = {t["id"]: t for t in http.get("/v1/teams", headers=demo_admin).json()}
        assert teams[demo_things["team"]]["members"] == [demo_things["trainee"]]
        users = {u["id"]: u for u in http.get("/v1/users", headers=demo_admin).json()}
        assert users[demo_things["trainee"]]["display_name"] == "Dana Trainee"
        assert (
            http.get(f"/v1/courses/{demo_things['course']}/assignments", headers=demo_admin).json()
            == []
        )
