"""Regressions of issue 23 on the real stack: breaks found by probing the running product.

1. A retried turn whose reply waits in the engine's queue longer than its generation lock
   lives calls the model once (counted in the orchestrator's own log).
2. Integers out of range (``last_seq``, query parameters, body fields) are typed errors,
   never a database failure; the WebSocket stays usable.
3. Knowledge bases whose names differ by a ``_v1`` live side by side.
4. Every error has the one body and an X-Request-ID: CORS refusals, unsafe client ids.
Beside them: pings answered while a reply generates, a reply that finishes after its client
reconnected pushed to the new socket, and messages of 4-byte characters up to the limit.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from pathlib import Path

import httpx
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus

from serve_apps.cli.chat import turn_frame
from tests.integration.test_conversation import stored_turns
from tests.integration.wsclient import connect, new_session, recv, send_turn

pytestmark = pytest.mark.integration

LOCK_TTL_S = 1.5  # generation_lock_ttl_s in conftest.py
MAX_MESSAGE_CHARS = 1984  # max_message_chars in conftest.py
BUSY_LINE = (
    "Let me walk you through our whole situation before you answer, because it matters. " * 22
)[:1850]


def busy_line(index: int) -> str:
    """A long turn whose prompt shares no prefix with another's past the persona's card: the
    engine's prefix cache would otherwise make the same long line nearly free to prefill."""
    return f"Busy line {index} ({uuid.uuid4().hex}). {BUSY_LINE}"


def model_calls(session_id: str) -> list[str]:
    """The orchestrator's log lines that say it asked the model for a reply in this session
    (every replica's Serve log under this Ray session's directory)."""
    import ray

    logs = Path(ray._private.worker._global_node.get_logs_dir_path()) / "serve"
    pattern = re.compile(rf"model asked: session {re.escape(session_id)} turn (\d+)")
    return [
        match.group(1)
        for path in sorted(logs.glob("replica_*TrainingOrchestrator*.log"))
        for match in pattern.finditer(path.read_text(errors="replace"))
    ]


async def _busy_turn(base_url: str, session_id: str, line: str, acked: asyncio.Event) -> None:
    async with connect(base_url, session_id) as ws:
        await ws.send(turn_frame(line))
        first = await recv(ws)
        assert first["type"] == "ack", first
        acked.set()
        while (await recv(ws, wait_s=300))["type"] != "reply_done":
            pass


async def test_a_retry_while_the_reply_waits_for_the_engine_calls_the_model_once(
    base_url, owner_db_url
):
    """Eighteen long turns, each its own text, keep the engine's queue full (on a CPU with
    bf16 matrix units nine were prefilled in under the lock's 1.5 s); the target turn's
    socket drops after its ``ack``, and the same ``client_turn_id`` comes again on a new
    socket after the lock's time-to-live. The lock was renewed while the turn waited: the
    retry is told the reply is in progress, the reply is pushed to the new socket when
    stored, and the orchestrator asked the model once."""
    busy_sessions = [await new_session(base_url) for _ in range(18)]
    target = await new_session(base_url)
    acks = [asyncio.Event() for _ in busy_sessions]
    busy = [
        asyncio.create_task(_busy_turn(base_url, s, busy_line(i), a))
        for i, (s, a) in enumerate(zip(busy_sessions, acks, strict=True))
    ]
    try:
        await asyncio.wait_for(asyncio.gather(*(a.wait() for a in acks)), 120)
        await asyncio.sleep(0.3)  # their retrieval done, their prompts at the engine
        async with connect(base_url, target) as ws:
            await ws.send(turn_frame("What does your team need most?", client_turn_id="x-1"))
            ack = await recv(ws)
            acked_at = time.monotonic()
        assert ack["type"] == "ack" and ack["duplicate"] is False
        await asyncio.sleep(LOCK_TTL_S * 1.2)  # the lock would have expired unrenewed
        async with connect(base_url, target) as ws:
            await ws.send(turn_frame("What does your team need most?", client_turn_id="x-1"))
            retry_sent_after = time.monotonic() - acked_at
            again = await recv(ws)
            assert again == {**ack, "duplicate": True}
            answer = await recv(ws)
            assert answer["type"] == "error" and answer["code"] == "reply_in_progress", (
                "the reply was stored before the retry came: the engine was not kept busy "
                f"long enough to test this ({answer})"
            )
            pushed = await recv(ws, wait_s=300)  # generated for the first socket, stored
        assert pushed["type"] == "reply_done" and pushed["reply_to"] == ack["seq"]
        # It waited longer than the lock lives before its first token: the case of issue 23.
        assert pushed["timing"]["first_token_ms"] > LOCK_TTL_S * 1000, pushed["timing"]
        assert retry_sent_after > LOCK_TTL_S
        await asyncio.gather(*busy)
    finally:
        for task in busy:
            task.cancel()
    rows = stored_turns(owner_db_url, target)
    assert [(r[0], r[1], r[3]) for r in rows] == [(1, "trainee", "x-1"), (2, "npc", None)]
    assert rows[1][2] == pushed["text"]
    assert model_calls(target) == [str(ack["seq"])]  # once, from the orchestrator's side


async def test_pings_are_answered_while_a_reply_is_generating(base_url):
    session_id = await new_session(base_url)
    async with connect(base_url, session_id) as ws:
        await ws.send(turn_frame("Tell me about your current CRM and what annoys you."))
        assert (await recv(ws))["type"] == "ack"
        sent = time.monotonic()
        await ws.send(json.dumps({"type": "ping"}))
        before_pong = []
        while (event := await recv(ws))["type"] != "pong":
            before_pong.append(event)
        pong_after_s = time.monotonic() - sent
        assert "reply_done" not in [e["type"] for e in before_pong]  # still generating
        while event["type"] != "reply_done":
            event = await recv(ws)
    assert pong_after_s < 1.0


async def test_turns_sent_while_one_is_answered_wait_in_order_and_a_flood_is_refused(base_url):
    session_id = await new_session(base_url)
    async with connect(base_url, session_id) as ws:
        for index in range(6):
            await ws.send(turn_frame(f"Question {index}: what matters to you?", f"q-{index}"))
        events = []
        while sum(e["type"] == "reply_done" for e in events) < 5:
            events.append(await recv(ws, wait_s=300))
    refused = [e for e in events if e["type"] == "error"]
    assert [(e["code"], e["client_turn_id"]) for e in refused] == [("too_many_turns", "q-5")]
    acks = [e["client_turn_id"] for e in events if e["type"] == "ack"]
    assert acks == [f"q-{i}" for i in range(5)]
    order = [e["type"] for e in events if e["type"] in {"ack", "reply_done"}]
    assert order == ["ack", "reply_done"] * 5  # one turn at a time


@pytest.mark.parametrize("last_seq", [2**31, 10**30, -1, "1", True, 1.5], ids=repr)
async def test_a_resume_out_of_range_is_a_typed_error_and_the_socket_stays_usable(
    base_url, last_seq
):
    session_id = await new_session(base_url)
    async with connect(base_url, session_id) as ws:
        await send_turn(ws, "Hello there.")
        await ws.send(json.dumps({"type": "resume", "last_seq": last_seq}))
        error = await recv(ws)
        assert error["type"] == "error" and error["code"] == "invalid_frame", error
        assert "last_seq" in error["message"]
        await ws.send(json.dumps({"type": "ping"}))
        assert await recv(ws) == {"type": "pong"}
        await ws.send(json.dumps({"type": "resume", "last_seq": 2**31 - 1}))
        await ws.send(json.dumps({"type": "resume", "last_seq": 1}))
        assert (await recv(ws))["seq"] == 2  # nothing after 2**31 - 1; then turn 2


@pytest.mark.parametrize("raw", ["2147483648", str(10**30), "-1", "1.0", "x", "%201"])
async def test_last_seq_out_of_range_on_connect_closes_1008(base_url, raw):
    session_id = await new_session(base_url)
    try:
        async with connect(base_url, session_id, f"?last_seq={raw}") as ws:
            with pytest.raises(ConnectionClosed) as closed:
                await recv(ws, wait_s=30)
        assert closed.value.rcvd is not None, "a close frame, not a dropped socket"
        assert closed.value.rcvd.code == 1008 and "last_seq" in closed.value.rcvd.reason
    except InvalidStatus as refused:  # a refused handshake is a clear answer too
        assert refused.response.status_code == 403
    async with connect(base_url, session_id, "?last_seq=2147483647") as ws:
        await ws.send(json.dumps({"type": "ping"}))
        assert await recv(ws) == {"type": "pong"}


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("get", "/v1/audit-events?limit=2147483648", None),
        ("get", f"/v1/audit-events?limit={10**30}", None),
        ("get", "/v1/audit-events?limit=-1", None),
        ("get", "/v1/knowledge-bases/product/search?q=price&top_k=2147483648", None),
        ("get", f"/v1/knowledge-bases/product/search?q=price&top_k={10**30}", None),
        ("post", "/v1/knowledge-bases/product/versions/2147483648/activate", None),
        ("post", f"/v1/knowledge-bases/product/versions/{10**30}/activate", None),
        ("post", "/v1/knowledge-bases/product/versions/-1/activate", None),
        ("put", "/v1/knowledge-bases/ranges", {"chunking": {"chunk_words": 10**30}}),
        ("put", "/v1/knowledge-bases/ranges", {"chunking": {"overlap_words": 2**31}}),
        (
            "post",
            "/v1/sessions/00000000-0000-0000-0000-000000000000/review/comments",
            {"seq": 2**31, "text": "a turn past PostgreSQL's integer"},
        ),
        (
            "post",
            "/v1/courses/no-such-course/assignments",
            {"team": "x", "due_at": "9999-12-31T23:00:00-14:00"},
        ),
    ],
)
async def test_integers_out_of_range_from_a_client_are_422s(
    base_url, demo_admin, method, path, body
):
    async with httpx.AsyncClient(base_url=base_url, headers=demo_admin, timeout=60) as client:
        response = await client.request(method, path, json=body)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_request" and error["request_id"]
    assert response.headers["x-request-id"] == error["request_id"]


def _integer_inputs(spec: dict) -> tuple[list[str], list[str]]:
    """Every integer a client can send (path and query parameters, body fields at any
    depth), named by route and place: those with a maximum, and those without."""
    schemas = spec.get("components", {}).get("schemas", {})
    bounded: list[str] = []
    unbounded: list[str] = []

    def walk(node: object, where: str, seen: frozenset[str]) -> None:
        if isinstance(node, list):
            for item in node:
                walk(item, where, seen)
            return
        if not isinstance(node, dict):
            return
        ref = node.get("$ref")
        if isinstance(ref, str):
            name = ref.rsplit("/", 1)[-1]
            if name not in seen:
                walk(schemas.get(name, {}), f"{where} ({name})", seen | {name})
            return
        if node.get("type") == "integer":
            has_maximum = "maximum" in node or "exclusiveMaximum" in node
            (bounded if has_maximum else unbounded).append(where)
        for key, value in node.get("properties", {}).items():
            walk(value, f"{where}.{key}", seen)
        for key in ("items", "anyOf", "oneOf", "allOf", "additionalProperties"):
            if key in node:
                walk(node[key], where, seen)

    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            route = f"{method.upper()} {path}"
            for parameter in operation.get("parameters", []):
                walk(parameter.get("schema", {}), f"{route} {parameter['name']}", frozenset())
            for content in operation.get("requestBody", {}).get("content", {}).values():
                walk(content.get("schema", {}), f"{route} body", frozenset())
    return bounded, unbounded


def test_every_integer_a_client_sends_has_a_maximum(base_url):
    """The sweep behind the cases above: an integer without an upper bound could reach
    PostgreSQL out of its range (a 500) on a route nobody probed by hand."""
    spec = httpx.get(f"{base_url}/openapi.json", timeout=60).json()
    bounded, unbounded = _integer_inputs(spec)
    assert unbounded == []
    # The walk reaches parameters and nested body fields alike.
    assert any("last_seq" not in b and " body" in b for b in bounded), bounded
    assert any("limit" in b for b in bounded), bounded


async def test_rubric_and_persona_numbers_out_of_range_are_422s(base_url, demo_admin):
    rubric = {
        "slug": "ranges",
        "name": "Ranges",
        "pass_score": 70,
        "criteria": [
            {
                "name": "asks",
                "skill": "discovery",
                "weight": 1,
                "checks": [{"question": "asks?", "kind": "questions", "min_count": 2**31}],
            }
        ],
    }
    async with httpx.AsyncClient(base_url=base_url, headers=demo_admin, timeout=60) as client:
        too_many = await client.post("/v1/rubrics", json=rubric)
        rubric["criteria"][0]["checks"][0]["min_count"] = 1
        rubric["pass_score"] = 1e308
        too_high = await client.post("/v1/rubrics", json=rubric)
        rubric["pass_score"] = 70
        valid = await client.post("/v1/rubrics", json=rubric)  # the same, within range
        await client.delete("/v1/rubrics/ranges")
    for response in (too_many, too_high):
        assert response.status_code == 422, response.text
        assert response.json()["error"]["code"] == "invalid_request"
    assert valid.status_code == 201, valid.text


def test_knowledge_bases_whose_names_differ_by_a_version_suffix_live_side_by_side(
    base_url, demo_admin
):
    suffix = uuid.uuid4().hex[:6]
    alpha, alpha_v1 = f"alpha{suffix}", f"alpha{suffix}_v1"
    with httpx.Client(base_url=base_url, headers=demo_admin, timeout=120) as http:
        for kb, word in ((alpha, "quillfeather"), (alpha_v1, "brassmoth")):
            assert http.put(f"/v1/knowledge-bases/{kb}", json={}).status_code == 200
            data = f"# {kb}\n\nThe {word} module ships in spring.\n".encode()
            response = http.post(
                f"/v1/knowledge-bases/{kb}/documents", files={"file": (f"{kb}.md", data)}
            )
            assert response.status_code == 201, response.text
        listed = http.get("/v1/knowledge-bases")
        assert listed.status_code == 200, listed.text
        states = {b["slug"]: b for b in listed.json()}
        assert states[alpha]["live_version"] == states[alpha_v1]["live_version"] == 1
        assert states[alpha]["versions"] == states[alpha_v1]["versions"] == [1]
        reindexed = http.post(f"/v1/knowledge-bases/{alpha}/reindex")
        assert reindexed.status_code == 200, reindexed.text
        assert reindexed.json()["live_version"] == 2
        assert http.get(f"/v1/knowledge-bases/{alpha_v1}").json()["versions"] == [1]
        for kb, word, other in ((alpha, "quillfeather", "brassmoth"), (alpha_v1, "brassmoth", "")):
            hits = http.get(
                f"/v1/knowledge-bases/{kb}/search", params={"q": f"{word} {other} module"}
            ).json()["hits"]
            assert hits and all(word in h["chunk"]["text"] for h in hits), (kb, hits)


def test_a_cors_refusal_has_the_error_body_and_a_request_id(base_url):
    with httpx.Client(base_url=base_url, timeout=30) as http:
        denied = http.options(
            "/v1/scenarios",
            headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"},
        )
    assert denied.status_code == 400
    error = denied.json()["error"]
    assert error["code"] == "cors_refused" and "origin" in error["message"]
    assert denied.headers.get_list("x-request-id") == [error["request_id"]]
    assert "access-control-allow-origin" not in denied.headers


def test_a_long_request_target_and_large_headers_get_the_error_body_behind_serve(
    base_url, demo_admin
):
    """Serve's proxy answers these before the gateway sees them: its middleware gives them
    the one body (8 KiB of path and query: 414; 32 KiB of headers: 431)."""
    with httpx.Client(base_url=base_url, timeout=30, headers=demo_admin) as http:
        long_target = http.get("/v1/scenarios", params={"q": "x" * 9000})
        large_headers = http.get("/v1/scenarios", headers={"X-Padding": "y" * 33_000})
        within = http.get("/v1/scenarios", params={"q": "x" * 7000})
    for response, status, code in (
        (long_target, 414, "uri_too_long"),
        (large_headers, 431, "headers_too_large"),
    ):
        assert response.status_code == status, response.text
        error = response.json()["error"]
        assert error["code"] == code and error["request_id"]
        assert response.headers["x-request-id"] == error["request_id"]
    assert within.status_code == 200, within.text


@pytest.mark.parametrize(
    "sent",
    ["x" * 5000, "<script>alert(1)</script>", "two words", "caf\u00e9".encode(), "a_b"],
    ids=["5000-chars", "script", "spaces", "utf8", "underscore"],
)
def test_an_unsafe_client_request_id_is_replaced_behind_serve(base_url, sent):
    with httpx.Client(base_url=base_url, timeout=30) as http:
        missing = http.get("/v1/nowhere", headers={"X-Request-ID": sent})
        ok = http.get("/health/live", headers={"X-Request-ID": sent})
    error = missing.json()["error"]
    assert re.fullmatch(r"[0-9a-f]{32}", error["request_id"]), error
    assert missing.headers.get_list("x-request-id") == [error["request_id"]]
    assert re.fullmatch(r"[0-9a-f]{32}", ok.headers["x-request-id"])


def test_a_valid_client_request_id_is_kept_for_correlation(base_url):
    sent = f"trace-{uuid.uuid4()}"
    with httpx.Client(base_url=base_url, timeout=30) as http:
        missing = http.get("/v1/nowhere", headers={"X-Request-ID": sent})
    assert missing.json()["error"]["request_id"] == sent
    assert missing.headers.get_list("x-request-id") == [sent]


async def test_the_longest_message_of_4_byte_characters_fits_a_frame(base_url, owner_db_url):
    """The frame limit leaves room for max_message_chars characters of any script, sent as
    UTF-8 (the terminal client's way); over the character limit is a typed error, not 1009."""
    session_id = await new_session(base_url)
    text = "\U0001f600" * MAX_MESSAGE_CHARS
    async with connect(base_url, session_id) as ws:
        await ws.send(turn_frame(text + "\U0001f600", client_turn_id="long-1"))
        too_long = await recv(ws)
        assert too_long["code"] == "message_too_long", too_long
        await ws.send(turn_frame(text, client_turn_id="long-2"))
        assert (await recv(ws))["type"] == "ack"  # the frame fit, the turn is stored
        # Not waited for: 1,984 emoji are more tokens than the bundled model's 2,048-token
        # context, and that reply is `model_unavailable` (the prompt, not the frame).
    assert stored_turns(owner_db_url, session_id)[0][2] == text
