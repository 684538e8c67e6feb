"""Overload on the real stack: with the live-conversation limit reached, new sessions and new
conversation sockets are refused at once (503 / ``overloaded`` with a retry time, close
1013), while the conversation already running is answered and loses nothing."""

from __future__ import annotations

import httpx
import pytest
import websockets
from redis.asyncio import Redis

from serve_apps.gateway.admission import Admission, set_limit_override
from tests.integration.wsclient import connect, new_session, recv, send_turn

pytestmark = pytest.mark.integration


@pytest.fixture
async def redis(stack):
    client = Redis.from_url(stack.secret_env["REDIS_URL"])
    yield client
    await set_limit_override(client, None)  # whatever the test did, the configured limit
    await client.aclose()


async def test_at_the_limit_new_work_is_refused_and_the_running_conversation_goes_on(stack, redis):
    running = await new_session(stack.base_url, mode="conversation")
    waiting = await new_session(stack.base_url, mode="conversation")
    async with connect(stack.base_url, running) as ws:
        first = await send_turn(ws, "Hello Priya, what CRM do you use today?")
        assert first[-1]["type"] == "reply_done"
        # Every place is taken: the limit is what is live now (this conversation among them).
        await set_limit_override(redis, await Admission(redis, limit=1).live())

        async with httpx.AsyncClient(base_url=stack.base_url, timeout=30) as http:
            refused = await http.post(
                "/v1/sessions", json={"scenario": "crm-discovery-call", "mode": "conversation"}
            )
        assert refused.status_code == 503
        assert refused.json()["error"]["code"] == "overloaded"
        assert int(refused.headers["Retry-After"]) >= 1

        async with connect(stack.base_url, waiting) as other:
            event = await recv(other, wait_s=30)
            assert event["type"] == "error" and event["code"] == "overloaded"
            assert event["retry_after_s"] >= 1
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await recv(other, wait_s=30)
            assert closed.value.rcvd.code == 1013

        # The running conversation is live: its next turn is answered as usual.
        second = await send_turn(ws, "Who else would be involved in choosing one?")
        assert second[-1]["type"] == "reply_done"

    async with httpx.AsyncClient(base_url=stack.base_url, timeout=30) as http:
        turns = (await http.get(f"/v1/sessions/{running}")).json()["turns"]
    acknowledged = [e["seq"] for e in first + second if e["type"] == "ack"]
    stored = {t["seq"] for t in turns}
    assert set(acknowledged) <= stored and len(turns) == 4  # two turns, two replies

    # Once the conversation left, its place is free again.
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=30) as http:
        again = await http.post(
            "/v1/sessions", json={"scenario": "crm-discovery-call", "mode": "conversation"}
        )
    assert again.status_code == 201
