"""A trainee's conversation with the persona, end to end on the real stack."""

import json

import httpx
import psycopg
import pytest

from serve_apps.contracts.turn import PersonaCard
from serve_apps.orchestrator.npc_prompt import clean_reply, trim_reply
from tests.integration.wsclient import connect, new_session, recv, send_turn

pytestmark = pytest.mark.integration


def stored_turns(owner_db_url: str, session_id: str) -> list[tuple]:
    """Read a session's turns straight from PostgreSQL, as its tenant (RLS is forced)."""
    with psycopg.connect(owner_db_url.replace("+psycopg", "")) as conn:
        tenant_id = _tenant_of(conn, session_id)
        conn.execute("SELECT set_config('app.tenant_id', %s, false)", (tenant_id,))
        return conn.execute(
            "SELECT seq, speaker::text, content, client_turn_id, reply_to_seq"
            " FROM turns WHERE session_id = %s ORDER BY seq",
            (session_id,),
        ).fetchall()


def _tenant_of(conn, session_id: str) -> str:
    for (tenant_id,) in conn.execute("SELECT id FROM tenants").fetchall():
        conn.execute("SELECT set_config('app.tenant_id', %s, false)", (str(tenant_id),))
        if conn.execute("SELECT 1 FROM training_sessions WHERE id = %s", (session_id,)).fetchone():
            return str(tenant_id)
    raise AssertionError(f"session {session_id} not found in any tenant")


async def test_multi_turn_conversation_streams_and_persists(base_url, owner_db_url, demo_admin):
    async with httpx.AsyncClient(base_url=base_url, headers=demo_admin) as client:
        persona = (await client.get("/v1/personas/skeptical-it-director")).json()
    speaker = PersonaCard(
        **{k: persona[k] for k in ("slug", "name", "role", "company")}, personality=""
    )
    session_id = await new_session(base_url)
    lines = [
        "Hi Priya, thanks for making time. What prompted you to look at new CRMs?",
        "What does a successful rollout look like for you?",
        "Who else is involved in the decision?",
    ]
    replies = []
    async with connect(base_url, session_id) as ws:
        for index, line in enumerate(lines):
            events = await send_turn(ws, line, client_turn_id=f"turn-{index}")
            ack, *tokens, done = events
            assert ack == {
                "type": "ack",
                "client_turn_id": f"turn-{index}",
                "seq": 2 * index + 1,
                "duplicate": False,
            }
            assert tokens and all(t["type"] == "token" for t in tokens)
            assert all(t["reply_to"] == ack["seq"] for t in tokens)
            assert done["type"] == "reply_done"
            assert done["seq"] == ack["seq"] + 1 and done["reply_to"] == ack["seq"]
            assert done["speaker"] == "skeptical-it-director"
            # The stored reply is exactly what streamed (no chunk lost at its end), cut back
            # to its last whole sentence when the token budget stopped it mid-sentence.
            streamed = "".join(t["text"] for t in tokens)
            assert done["text"].strip()
            assert done["text"] == trim_reply(clean_reply(streamed, speaker))[0]
            assert 0 < done["output_tokens"] <= 24
            timing = done["timing"]  # the server's clock: stored, model asked, first token
            assert 0 < timing["stored_ms"] <= timing["model_called_ms"]
            assert timing["model_called_ms"] < timing["first_token_ms"]
            assert timing["first_token_ms"] <= timing["reply_stored_ms"]
            replies.append(done["text"])

    rows = stored_turns(owner_db_url, session_id)
    assert [r[0] for r in rows] == [1, 2, 3, 4, 5, 6]
    assert [r[1] for r in rows] == ["trainee", "npc"] * 3
    assert [r[2] for r in rows[0::2]] == lines
    assert [r[2] for r in rows[1::2]] == replies
    assert [r[4] for r in rows[1::2]] == [1, 3, 5]

    async with httpx.AsyncClient(base_url=base_url) as client:
        body = (await client.get(f"/v1/sessions/{session_id}")).json()
    assert [t["text"] for t in body["turns"]] == [
        x for pair in zip(lines, replies, strict=True) for x in pair
    ]


async def test_retried_turn_returns_the_stored_reply_without_a_second_model_call(
    base_url, owner_db_url
):
    session_id = await new_session(base_url)
    async with connect(base_url, session_id) as ws:
        first = await send_turn(ws, "Can you tell me about your team?", client_turn_id="once")
    # The client lost the connection and retries on a new one.
    async with connect(base_url, session_id) as ws:
        again = await send_turn(ws, "Can you tell me about your team?", client_turn_id="once")
    assert [e["type"] for e in again] == ["ack", "reply_done"]  # no tokens: nothing generated
    assert again[0]["duplicate"] is True and again[0]["seq"] == first[0]["seq"]
    assert again[1]["text"] == first[-1]["text"] and again[1]["seq"] == first[-1]["seq"]
    assert first[-1]["timing"] is not None and again[1]["timing"] is None
    assert len(stored_turns(owner_db_url, session_id)) == 2


async def test_reconnect_replays_everything_after_the_last_sequence_number(base_url):
    session_id = await new_session(base_url)
    async with connect(base_url, session_id) as ws:
        first = await send_turn(ws, "Hello, is now a good time?")
        second = await send_turn(ws, "What CRM do you use today?")
    last_seen = first[-1]["seq"]  # the client saw the first exchange only
    async with connect(base_url, session_id, f"?last_seq={last_seen}") as ws:
        replayed = [await recv(ws), await recv(ws)]
    assert [e["type"] for e in replayed] == ["turn", "turn"]
    assert [e["seq"] for e in replayed] == [3, 4]
    assert replayed[0]["text"] == "What CRM do you use today?"
    assert replayed[0]["client_turn_id"] == second[0]["client_turn_id"]
    assert replayed[1]["text"] == second[-1]["text"] and replayed[1]["reply_to"] == 3
    # The same with a resume frame on an open connection.
    async with connect(base_url, session_id) as ws:
        await ws.send(json.dumps({"type": "resume", "last_seq": 0}))
        everything = [await recv(ws) for _ in range(4)]
    assert [e["seq"] for e in everything] == [1, 2, 3, 4]


async def test_health_endpoints(base_url):
    async with httpx.AsyncClient(base_url=base_url) as client:
        live = await client.get("/health/live")
        ready = await client.get("/health/ready")
    assert live.status_code == 200 and live.json()["status"] == "ok"
    assert ready.status_code == 200
    assert ready.json()["checks"] == {
        "database": "ok",
        "redis": "ok",
        "model": "ok",
        "knowledge": "ok",
    }
    assert ready.headers["x-request-id"]
