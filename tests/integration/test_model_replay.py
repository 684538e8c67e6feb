"""Replaying stored sessions against a candidate version on the real stack.

Two practice sessions of the demo company are talked and ended, then replayed against the
judge's version (models/configs/npc_cpu_persona.yaml: its application runs already, so no engine
starts here; it is probed, used, and left running). The report has both sessions, each turn's
stored reply beside the candidate's, and the evaluator's scores of both sides; a session of
another company, newer than both, is not in it. The conversation tables are the same rows
afterwards (counts and a checksum of every company's turns and sessions), and nothing served
changed. Bad requests change nothing either; a candidate that cannot start says why.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path
from urllib.parse import quote

import httpx
import psycopg
import pytest
import yaml

from models.llm import LLMDeploymentSettings
from tests.integration.wsclient import connect, new_session, send_turn

pytestmark = pytest.mark.integration

CONFIGS = Path(__file__).resolve().parents[2] / "models" / "configs"
TRAINEE = {"X-Dev-Tenant": "demo", "X-Dev-User": "trainee@demo.salesboost.local"}
RIVAL_TRAINEE = {"X-Dev-Tenant": "rival", "X-Dev-User": "trainee@rival.example"}
LINES = ["Hi Priya, thanks for the time today.", "What does your team use for records now?"]
# The conversation's tables: a replay reads them and writes none.
CHECKSUMS = {
    "turns": "session_id, seq, speaker, persona_id, client_turn_id, reply_to_seq, content, "
    "output_tokens, model, citations::text, first_token_ms",
    "training_sessions": "id, status, mode, last_seq, npc_model, ended_at",
}
COUNTED = ("agent_events", "session_evaluations", "skill_scores", "trainee_memories")


def _config(name: str) -> dict:
    return yaml.safe_load((CONFIGS / f"{name}.yaml").read_text())


async def _api(base_url: str, headers: dict, method: str, path: str, **kwargs) -> httpx.Response:
    """A request, sent again after a 503's Retry-After (the engine can starve this 2-core
    machine's Redis for seconds)."""
    async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=60) as client:
        for _ in range(10):
            response = await client.request(method, path, **kwargs)
            if response.status_code != 503:
                return response
            await asyncio.sleep(int(response.headers.get("Retry-After", "2")))
    return response


async def _replay(base_url: str, admin: dict, config: dict, sessions: int) -> httpx.Response:
    body = {"config": config, "sessions": sessions}
    return await _api(base_url, admin, "POST", "/v1/models/npc/replay", json=body)


async def _until_replay_ends(base_url: str, admin: dict, replay_id: str) -> dict:
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline:
        response = await _api(base_url, admin, "GET", f"/v1/models/replays/{replay_id}")
        assert response.status_code == 200, response.text
        status = response.json()
        if status["state"] in ("done", "failed"):
            return status
        await asyncio.sleep(2)
    raise AssertionError("the replay did not end")


async def _models(base_url: str, admin: dict) -> dict:
    response = await _api(base_url, admin, "GET", "/v1/models")
    assert response.status_code == 200, response.text
    return response.json()["roles"]


def _stored_rows(owner_db_url: str) -> dict[str, object]:
    """Every company's conversation rows, as counts and checksums (each company read as
    itself: row-level security holds for the schema owner too)."""
    found: dict[str, object] = {}
    with psycopg.connect(owner_db_url.replace("+psycopg", "")) as conn:
        for (tenant,) in conn.execute("SELECT id FROM tenants ORDER BY id").fetchall():
            conn.execute("SELECT set_config('app.tenant_id', %s, false)", (str(tenant),))
            for table, columns in CHECKSUMS.items():
                found[f"{tenant}:{table}"] = conn.execute(
                    f"SELECT count(*), md5(coalesce(string_agg(row({columns})::text, '|' "
                    f"ORDER BY row({columns})::text), '')) FROM {table}"
                ).fetchone()
            for table in COUNTED:
                found[f"{tenant}:{table}"] = conn.execute(
                    f"SELECT count(*) FROM {table}"
                ).fetchone()
    return found


async def _settled_rows(owner_db_url: str) -> dict[str, object]:
    """The rows once the last turns' late agent events are stored (two reads alike)."""
    last = _stored_rows(owner_db_url)
    for _ in range(30):
        await asyncio.sleep(1)
        now = _stored_rows(owner_db_url)
        if now == last:
            return now
        last = now
    raise AssertionError("the conversation tables did not settle")


def _stored_replies(owner_db_url: str, session_id: str) -> dict[int, str]:
    """A demo session's stored replies by the trainee turn they answer."""
    with psycopg.connect(owner_db_url.replace("+psycopg", "")) as conn:
        (tenant,) = conn.execute("SELECT id FROM tenants WHERE slug = 'demo'").fetchone()
        conn.execute("SELECT set_config('app.tenant_id', %s, false)", (str(tenant),))
        rows = conn.execute(
            "SELECT reply_to_seq, content FROM turns WHERE session_id = %s AND speaker = 'npc'",
            (session_id,),
        ).fetchall()
    return dict(rows)


async def _ended_session(base_url: str, trainee: dict, turns: int) -> str:
    """A practice session of ``trainee``'s with ``turns`` answered turns, ended and scored."""
    session_id = await new_session(base_url, trainee, mode="practice")
    query = f"?dev_tenant={trainee['X-Dev-Tenant']}&dev_user={quote(trainee['X-Dev-User'])}"
    async with connect(base_url, session_id, query) as ws:
        for index in range(turns):
            turn_id = uuid.uuid4().hex
            for _ in range(5):  # `unavailable`: sent again after retry_after_s, as clients do
                events = await send_turn(ws, LINES[index % len(LINES)], turn_id)
                busy = [e for e in events if e["type"] == "error" and e["code"] == "unavailable"]
                if not busy:
                    break
                await asyncio.sleep(busy[0]["retry_after_s"])
            assert events[-1]["type"] == "reply_done", events
    ended = await _api(base_url, trainee, "POST", f"/v1/sessions/{session_id}/end")
    assert ended.status_code == 200, ended.text
    return session_id


async def test_bad_replays_change_nothing(base_url, demo_admin, rival_admin):
    before = await _models(base_url, demo_admin)
    config = _config("npc_cpu_persona")
    for sessions in (0, 51, -1):
        response = await _replay(base_url, demo_admin, config, sessions)
        assert response.status_code == 422, response.text
        assert "sessions" in response.json()["error"]["message"]
    response = await _replay(base_url, demo_admin, {**config, "kv_cache_gib": 0}, 2)
    assert response.status_code == 422 and "kv_cache_gib" in response.text
    body = {"config": config, "sessions": 2}
    response = await _api(base_url, demo_admin, "POST", "/v1/models/judge/replay", json=body)
    assert response.status_code == 422 and "replay npc" in response.text
    # Only a model admin's company replays, and only its own sessions: another company's
    # admin (and a trainee) is refused, whatever the replay.
    for headers in (TRAINEE, rival_admin):
        assert (await _replay(base_url, headers, config, 2)).status_code == 403
        missing = f"/v1/models/replays/{uuid.uuid4().hex}"
        assert (await _api(base_url, headers, "GET", missing)).status_code == 403
    missing = await _api(base_url, demo_admin, "GET", f"/v1/models/replays/{uuid.uuid4().hex}")
    assert missing.status_code == 404
    assert (await _api(base_url, demo_admin, "GET", "/v1/models/replays/x")).status_code == 422
    assert await _models(base_url, demo_admin) == before


async def test_a_replay_of_two_sessions_reports_both_and_changes_no_stored_row(
    base_url, demo_admin, rival_admin, owner_db_url, second_tenant
):
    judge_config = _config("npc_cpu_persona")
    before = await _models(base_url, demo_admin)
    judge = before["judge"]["active"]
    # The judge's version runs: replaying against it starts no engine.
    assert LLMDeploymentSettings.model_validate(judge_config).version == judge["version"]
    demo_sessions = [await _ended_session(base_url, TRAINEE, 2) for _ in range(2)]
    # Newer than both: a replay that read every company's sessions would take it.
    rival_session = await _ended_session(base_url, RIVAL_TRAINEE, 1)
    rows_before = await _settled_rows(owner_db_url)

    response = await _replay(base_url, demo_admin, judge_config, 2)
    assert response.status_code == 202, response.text
    started = response.json()
    assert started["sessions_total"] == 2 and started["candidate"] == judge["version"]
    # While it runs, the persona's versions stay as they are: another replay or a swap waits.
    again = await _replay(base_url, demo_admin, judge_config, 1)
    assert again.status_code == 409 and "a replay" in again.text
    if judge["version"] == before["npc"]["active"]["version"]:
        # A swap to the version answering (had it not been refused, it would change nothing).
        body = {"config": judge_config}
        swap = await _api(base_url, demo_admin, "POST", "/v1/models/npc/swap", json=body)
        assert swap.status_code == 409 and "a replay" in swap.text
    # Another company's admin reads nothing of it.
    response = await _api(
        base_url, rival_admin, "GET", f"/v1/models/replays/{started['replay_id']}"
    )
    assert response.status_code == 403

    status = await _until_replay_ends(base_url, demo_admin, started["replay_id"])
    assert status["state"] == "done", status
    report = status["report"]
    assert report["scope"] == "demo" and report["candidate_version"] == judge["version"]
    assert len(report["sessions"]) == 2 and report["replayed"] == 2 and report["failed"] == 0
    replayed = {s["session_id"]: s for s in report["sessions"]}
    assert set(replayed) == set(demo_sessions) and rival_session not in replayed
    for session_id in demo_sessions:
        session = replayed[session_id]
        assert session["state"] == "replayed" and session["ended"], session
        stored = _stored_replies(owner_db_url, session_id)
        assert len(session["turns"]) == 2
        for turn in session["turns"]:
            assert turn["stored"]["text"] == stored[turn["seq"]]
            assert turn["candidate"]["text"], turn
            assert turn["candidate"]["model"] == judge["version"]
            assert turn["candidate"]["first_token_ms"] > 0
            assert turn["candidate"]["reviews"] >= 1  # practice: the reviewer ran
        # Both sides scored now, with the same rubric and judge; the one stored beside them.
        assert session["stored"]["score"] is not None
        assert session["candidate"]["score"] is not None
        assert session["recorded_score"] is not None
    assert report["stored"]["replies"] == report["candidate"]["replies"] == 4
    assert report["candidate"]["scored_sessions"] == 2
    assert report["candidate"]["ttft_turns"] == 4 and report["candidate"]["cut_known"] == 4

    # Nothing stored changed, in any company; the replay is in the audit log.
    assert _stored_rows(owner_db_url) == rows_before
    audit = await _api(
        base_url, demo_admin, "GET", "/v1/audit-events", params={"action": "model.replay"}
    )
    assert audit.status_code == 200, audit.text
    assert started["replay_id"] in {e["details"].get("replay_id") for e in audit.json()}
    # Nothing served changed: the same versions answer, and the judge's application (the
    # candidate, served before) still answers a turn.
    assert await _models(base_url, demo_admin) == before
    await _ended_session(base_url, TRAINEE, 1)


async def test_a_candidate_that_cannot_start_says_why(base_url, demo_admin):
    await _ended_session(base_url, TRAINEE, 1)  # a session to replay, whatever ran before
    before = await _models(base_url, demo_admin)
    missing = {**_config("npc_cpu_candidate"), "source": "/nonexistent/model"}
    response = await _replay(base_url, demo_admin, missing, 1)
    assert response.status_code == 202, response.text
    status = await _until_replay_ends(base_url, demo_admin, response.json()["replay_id"])
    assert status["state"] == "failed" and status["report"] is None
    assert "did not come up" in status["message"], status
    assert await _models(base_url, demo_admin) == before
