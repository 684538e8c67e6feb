"""A gateway replica that dies mid-reply loses no acknowledged turn, and the retry completes it."""

import asyncio
import json
import time

import httpx
import pytest
import ray
from websockets.exceptions import ConnectionClosed

from tests.integration.test_conversation import stored_turns
from tests.integration.wsclient import connect, new_session, recv, send_turn

pytestmark = pytest.mark.integration


def _kill_gateway_replicas() -> int:
    names = [
        a["name"]
        for a in ray.util.list_named_actors(all_namespaces=True)
        if a["name"].startswith("SERVE_REPLICA::salesboost#Gateway#")
    ]
    for name in names:
        ray.kill(ray.get_actor(name, namespace="serve"), no_restart=True)
    return len(names)


async def _wait_until_serving(base_url: str, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    async with httpx.AsyncClient(base_url=base_url, timeout=5) as client:
        while time.monotonic() < deadline:
            try:
                if (await client.get("/health/live")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(1)
    raise TimeoutError("the gateway did not come back")


async def test_killed_gateway_replica_loses_no_acknowledged_turn(base_url, owner_db_url):
    session_id = await new_session(base_url)
    async with connect(base_url, session_id) as ws:
        await ws.send(json.dumps({"type": "turn", "client_turn_id": "doomed", "text": "Hello?"}))
        ack = await recv(ws)
        assert ack["type"] == "ack" and ack["seq"] == 1
        assert (await recv(ws))["type"] == "token"  # the reply is streaming
        assert _kill_gateway_replicas() >= 1
        with pytest.raises(ConnectionClosed):
            while True:
                await recv(ws, wait_s=60)

    # Serve starts a new replica; the acknowledged turn is in PostgreSQL.
    await _wait_until_serving(base_url)
    assert [(r[0], r[1], r[3]) for r in stored_turns(owner_db_url, session_id)][:1] == [
        (1, "trainee", "doomed")
    ]
    # Retrying the turn completes the reply (once the dead replica's lock lapses).
    deadline = time.monotonic() + 60
    async with connect(base_url, session_id) as ws:
        while True:
            events = await send_turn(ws, "Hello?", client_turn_id="doomed")
            if events[-1].get("code") != "reply_in_progress" or time.monotonic() > deadline:
                break
            await asyncio.sleep(2)
    assert events[0] == {"type": "ack", "client_turn_id": "doomed", "seq": 1, "duplicate": True}
    assert events[-1]["type"] == "reply_done" and events[-1]["reply_to"] == 1
    rows = stored_turns(owner_db_url, session_id)
    assert [r[1] for r in rows] == ["trainee", "npc"]
