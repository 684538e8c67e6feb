"""The quality bench's probe script through the real stack: every persona reply is stored,
reviewed (a ``review`` event per attempt, stored with the turn), never ends mid-sentence, and
the trainee sees no agent error (an optional agent that fails is stored, not sent).

The integration stack's replies are 24 tokens long, so trimming to the last whole sentence
is at work on most of them.
"""

from __future__ import annotations

import json

import httpx
import pytest

from loadtests.bench.quality import EVALSETS
from serve_apps.orchestrator.npc_prompt import ends_a_sentence
from tests.integration.wsclient import connect, drain, new_session, send_turn

pytestmark = pytest.mark.integration

DEMO_TRAINEE = {"X-Dev-Tenant": "demo", "X-Dev-User": "trainee@demo.salesboost.local"}


def _probe_lines(scenario: str, count: int) -> list[str]:
    for line in (EVALSETS / "probes.jsonl").read_text().splitlines():
        probe = json.loads(line)
        if probe["scenario"] == scenario:
            return probe["lines"][:count]
    raise AssertionError(f"no probe script for {scenario}")


async def test_the_probe_scripts_replies_are_stored_and_reviewed(base_url):
    lines = _probe_lines("crm-discovery-call", 3)
    session_id = await new_session(base_url, mode="assessment")
    sent: list[dict] = []
    async with connect(base_url, session_id) as ws:
        for line in lines:
            sent += await send_turn(ws, line)
        sent += await drain(ws, quiet_s=5)
    assert [e for e in sent if e["type"] == "error"] == []
    done = [e for e in sent if e["type"] == "reply_done"]
    assert len(done) == len(lines)
    for reply in done:
        assert reply["text"] and ends_a_sentence(reply["text"]), reply["text"]
        assert reply["citations"] == []  # the discovery call's persona reads nothing
    reviews = [e for e in sent if e["type"] == "review"]
    assert {r["reply_to"] for r in reviews} == {d["reply_to"] for d in done}
    assert all(r["action"] in {"accepted", "retry", "replaced"} for r in reviews)

    async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
        report = (
            await client.get(f"/v1/sessions/{session_id}/report", headers=DEMO_TRAINEE)
        ).json()
    stored_reviews = [
        e for e in report["events"] if (e["agent"], e["kind"]) == ("reviewer", "review")
    ]
    assert len(stored_reviews) == len(reviews)
    assert {e["reply_to"] for e in stored_reviews} == {d["reply_to"] for d in done}
    # Replayed from PostgreSQL: the stored replies are the ones the trainee read.
    async with connect(base_url, session_id, "?last_seq=0") as ws:
        replayed = await drain(ws, quiet_s=3)
    stored = [t["text"] for t in replayed if t["type"] == "turn" and t["speaker"] != "trainee"]
    assert stored == [d["text"] for d in done]
