"""Bad input gets a typed error event or a close code; the server and stored data survive."""

import json

import httpx
import pytest
from websockets.exceptions import ConnectionClosed

from tests.integration.test_conversation import stored_turns
from tests.integration.wsclient import connect, new_session, recv, send_turn

pytestmark = pytest.mark.integration


async def _closed_with(ws) -> tuple[int, str]:
    with pytest.raises(ConnectionClosed) as closed:
        await recv(ws, wait_s=30)
    assert closed.value.rcvd is not None, "the server must send a close frame"
    return closed.value.rcvd.code, closed.value.rcvd.reason


async def test_bad_frames_get_typed_errors_and_the_conversation_goes_on(base_url, owner_db_url):
    session_id = await new_session(base_url)
    async with connect(base_url, session_id) as ws:
        good = await send_turn(ws, "Hello Priya.", client_turn_id="good-1")
        cases = [
            ("{this is not json", "invalid_json"),
            (json.dumps({"type": "dance"}), "invalid_frame"),
            (json.dumps({"type": "turn", "client_turn_id": "c", "text": ""}), "invalid_frame"),
            (json.dumps({"type": "turn", "client_turn_id": "c", "text": " "}), "invalid_frame"),
            (
                json.dumps({"type": "turn", "client_turn_id": "bad id!", "text": "x"}),
                "invalid_frame",
            ),
            (json.dumps({"type": "turn", "text": "no id"}), "invalid_frame"),
            (
                json.dumps({"type": "turn", "client_turn_id": "c", "text": "x" * 2001}),
                "message_too_long",
            ),
            (json.dumps([1, 2, 3]), "invalid_frame"),
        ]
        for raw, code in cases:
            await ws.send(raw)
            event = await recv(ws)
            assert event["type"] == "error" and event["code"] == code, (raw[:40], event)
        await ws.send(b'{"type": "ping"}')  # binary frames are accepted too
        assert await recv(ws) == {"type": "pong"}
        after = await send_turn(ws, "Still there?", client_turn_id="good-2")
        assert after[-1]["type"] == "reply_done"
    rows = stored_turns(owner_db_url, session_id)
    assert [r[2] for r in rows[0::2]] == ["Hello Priya.", "Still there?"]
    assert rows[1][2] == good[-1]["text"]


async def test_oversized_frame_closes_1009_and_keeps_stored_turns(base_url, owner_db_url):
    session_id = await new_session(base_url)
    async with connect(base_url, session_id) as ws:
        await send_turn(ws, "Let me introduce myself.")
        await ws.send(json.dumps({"type": "turn", "client_turn_id": "big", "text": "x" * 9000}))
        code, reason = await _closed_with(ws)
    assert code == 1009 and "8192" in reason
    assert len(stored_turns(owner_db_url, session_id)) == 2
    async with connect(base_url, session_id, "?last_seq=0") as ws:  # the session still works
        assert [(await recv(ws))["seq"] for _ in range(2)] == [1, 2]


@pytest.mark.parametrize(
    "session_id", ["00000000-0000-0000-0000-000000000000", "6f1c9a52-3a7e-4d7a-9c55-1f0f0f0f0f0f"]
)
async def test_unknown_session_closes_1008(base_url, session_id):
    async with connect(base_url, session_id) as ws:
        code, reason = await _closed_with(ws)
    assert code == 1008 and "no such training session" in reason


async def test_malformed_session_id_is_refused(base_url):
    from websockets.exceptions import InvalidStatus

    try:
        async with connect(base_url, "not-a-uuid") as ws:
            code, _ = await _closed_with(ws)
            assert code == 1008
    except InvalidStatus as refused:  # refused before the upgrade: also a clear answer
        assert refused.response.status_code in {403, 404}


async def test_another_tenants_session_is_invisible(base_url, second_tenant, owner_db_url):
    rival_session = await new_session(base_url, headers=second_tenant)
    async with connect(base_url, rival_session) as ws:  # as the demo tenant's trainee
        code, _ = await _closed_with(ws)
    assert code == 1008
    async with httpx.AsyncClient(base_url=base_url) as client:
        response = await client.get(f"/v1/sessions/{rival_session}")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "session_not_found"
    assert stored_turns(owner_db_url, rival_session) == []
    # The owner of the session can still use it.
    async with connect(
        base_url, rival_session, "?dev_tenant=rival&dev_user=trainee@rival.example"
    ) as ws:
        events = await send_turn(ws, "Hello from Rival.")
    assert events[-1]["type"] == "reply_done"


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "code"),
    [
        ("post", "/v1/sessions", {"scenario": "no-such-scenario"}, 404, "scenario_not_found"),
        ("post", "/v1/sessions", {"scenario": ""}, 422, "invalid_request"),
        ("post", "/v1/sessions", {"scenario": "x" * 65}, 422, "invalid_request"),
        ("post", "/v1/sessions", {"scenario": 5}, 422, "invalid_request"),
        (
            "post",
            "/v1/sessions",
            {"scenario": "crm-discovery-call", "x": 1},
            422,
            "invalid_request",
        ),
        ("post", "/v1/sessions", None, 422, "invalid_request"),
        ("get", "/v1/sessions/not-a-uuid", None, 422, "invalid_request"),
        (
            "get",
            "/v1/sessions/00000000-0000-0000-0000-000000000000",
            None,
            404,
            "session_not_found",
        ),
        ("get", "/v1/nowhere", None, 404, "not_found"),
    ],
)
async def test_http_bad_input_gets_one_error_body(base_url, method, path, body, status, code):
    async with httpx.AsyncClient(base_url=base_url) as client:
        response = await client.request(method, path, json=body)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code and error["message"] and error["request_id"]
    assert response.headers["x-request-id"] == error["request_id"]


async def test_malformed_json_body_is_a_422(base_url):
    async with httpx.AsyncClient(base_url=base_url) as client:
        response = await client.post(
            "/v1/sessions", content=b"{nope", headers={"content-type": "application/json"}
        )
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid_request"


async def test_request_bodies_are_bounded_before_they_are_read(base_url, demo_admin):
    big = {"slug": "big", "name": "x", "role": "x", "company": "x", "personality": "x" * (2 << 20)}
    async with httpx.AsyncClient(base_url=base_url, timeout=60) as client:
        too_big = await client.post("/v1/personas", json=big, headers=demo_admin)
        assert too_big.status_code == 413
        error = too_big.json()["error"]
        assert error["code"] == "body_too_large" and error["request_id"] != "-"

        async def chunks():
            yield b'{"scenario": '
            yield b'"crm-discovery-call"}'

        unsized = await client.post(
            "/v1/sessions", content=chunks(), headers={"Content-Type": "application/json"}
        )
        assert unsized.status_code == 411 and unsized.json()["error"]["code"] == "length_required"
        nul = await client.post(
            "/v1/personas",
            json={"slug": "nul", "name": "x\x00", "role": "x", "company": "x", "personality": "x"},
            headers=demo_admin,
        )
        assert nul.status_code == 422
