"""The score distribution on the real stack: sessions scored by the evaluator against a rubric
of weighted pattern checks (so each score is known), counted in buckets of the AI's score
over the caller's people — a manager's teams, an admin's company — and refused to trainees."""

from __future__ import annotations

import uuid
from urllib.parse import quote

import httpx
import pytest

from tests.integration.wsclient import connect, send_turn

pytestmark = pytest.mark.integration

ROUTE = "/v1/analytics/score-distribution"


def _as(email: str) -> dict[str, str]:
    return {"X-Dev-Tenant": "demo", "X-Dev-User": email}


async def _scored(base_url: str, email: str, scenario: str, text: str | None) -> dict:
    """One assessment session of ``email``'s: one turn (or none), ended and scored."""
    async with httpx.AsyncClient(base_url=base_url, headers=_as(email), timeout=120) as http:
        created = await http.post("/v1/sessions", json={"scenario": scenario, "mode": "assessment"})
        assert created.status_code == 201, created.text
        session_id = created.json()["id"]
        if text is not None:
            query = f"?dev_tenant=demo&dev_user={quote(email)}"
            async with connect(base_url, session_id, query) as ws:
                events = await send_turn(ws, text)
                assert events[-1]["type"] == "reply_done", events[-1]
        ended = await http.post(f"/v1/sessions/{session_id}/end")
        assert ended.status_code == 200, ended.text
        return {"id": session_id, **ended.json()["evaluation"]}


async def test_scores_are_counted_in_buckets_of_the_ai_score_over_the_callers_people(
    base_url, demo_admin
):
    tag = uuid.uuid4().hex[:8]
    team = f"Scores {tag}"
    rubric = {
        "slug": f"weighted-{tag}",
        "name": "Weighted words",
        "pass_score": 50,
        "criteria": [
            {
                "skill": "wording",
                "name": "Says the words",
                "checks": [
                    {"question": "Alpha?", "kind": "pattern", "pattern": "alpha", "weight": 35},
                    {"question": "Bravo?", "kind": "pattern", "pattern": "bravo", "weight": 10},
                    {"question": "Charlie?", "kind": "pattern", "pattern": "charlie", "weight": 55},
                ],
            }
        ],
    }
    scenario = {
        "slug": f"scores-{tag}",
        "title": "Scored call",
        "product": "CloudCRM",
        "description": "A call scored by words.",
        "rubric": rubric["slug"],
        "personas": ["skeptical-it-director"],
    }
    async with httpx.AsyncClient(base_url=base_url, headers=demo_admin, timeout=60) as http:
        assert (await http.post("/v1/rubrics", json=rubric)).status_code == 201
        assert (await http.post("/v1/scenarios", json=scenario)).status_code == 201
        assert (await http.post("/v1/teams", json={"name": team})).status_code == 201

        async def invite(role: str, teams: list[str]) -> str:
            email = f"{role}-{uuid.uuid4().hex[:8]}@demo.salesboost.local"
            person = {"email": email, "display_name": f"Scores {role}", "role": role}
            invited = await http.post("/v1/users/invite", json={**person, "teams": teams})
            assert invited.status_code == 201, invited.text
            return email

        manager = await invite("manager", [team])
        mine = await invite("trainee", [team])
        other = await invite("trainee", [])

    top = await _scored(base_url, mine, scenario["slug"], "alpha, bravo and charlie it is.")
    low = await _scored(base_url, mine, scenario["slug"], "Just alpha today.")
    nothing = await _scored(base_url, mine, scenario["slug"], None)
    not_my_team = await _scored(base_url, other, scenario["slug"], None)
    assert (top["score"], low["score"], nothing["score"], not_my_team["score"]) == (100, 35, 0, 0)
    assert (top["passed"], low["passed"]) == (True, False)

    async with httpx.AsyncClient(base_url=base_url, timeout=60) as http:
        # The manager's adjusted score is kept beside the AI's; analytics count the AI's.
        adjusted = await http.put(
            f"/v1/sessions/{low['id']}/review/score",
            json={"score": 95, "reason": "The words were there in spirit."},
            headers=_as(manager),
        )
        assert adjusted.status_code == 200, adjusted.text

        got = await http.get(ROUTE, headers=_as(manager))
        assert got.status_code == 200, got.text
        body = got.json()
        assert body["bucket"] == 10 and (body["scored"], body["passed"]) == (3, 1)
        assert [(b["low"], b["high"]) for b in body["buckets"]] == [
            (0, 9), (10, 19), (20, 29), (30, 39), (40, 49),
            (50, 59), (60, 69), (70, 79), (80, 89), (90, 100),
        ]  # fmt: skip
        assert [b["sessions"] for b in body["buckets"]] == [1, 0, 0, 1, 0, 0, 0, 0, 0, 1]

        wide = (await http.get(ROUTE, params={"bucket": 20}, headers=_as(manager))).json()
        assert [(b["low"], b["high"], b["sessions"]) for b in wide["buckets"]] == [
            (0, 19, 1), (20, 39, 1), (40, 59, 0), (60, 79, 0), (80, 100, 1),
        ]  # fmt: skip

        # The admin sees the whole company: the other trainee's session too.
        company = (await http.get(ROUTE, headers=demo_admin)).json()
        assert company["scored"] == sum(b["sessions"] for b in company["buckets"])
        assert company["scored"] >= 4 and company["buckets"][0]["sessions"] >= 2
        assert all(
            c["sessions"] >= m["sessions"]
            for c, m in zip(company["buckets"], body["buckets"], strict=True)
        )

        refused = await http.get(ROUTE, headers=_as(mine))
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "forbidden"
        for bad in ("7", "0", "100", "ten", "-10"):
            invalid = await http.get(ROUTE, params={"bucket": bad}, headers=_as(manager))
            assert invalid.status_code == 422, (bad, invalid.text)
            error = invalid.json()["error"]
            assert error["code"] == "invalid_request" and error["message"].startswith(
                "query.bucket"
            ), error
