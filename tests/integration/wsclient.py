"""A small WebSocket test client for the conversation protocol."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import websockets

from serve_apps.contracts.wire import ws_url


async def new_session(
    base_url: str,
    headers: dict[str, str] | None = None,
    *,
    scenario: str = "crm-discovery-call",
    mode: str = "conversation",
) -> str:
    """A session; the persona alone unless asked (the protocol tests need no agents)."""
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
        response = await client.post(
            "/v1/sessions", json={"scenario": scenario, "mode": mode}, headers=headers
        )
        assert response.status_code == 201, response.text
        return response.json()["id"]


def connect(base_url: str, session_id: str, query: str = "", **kwargs: Any):
    return websockets.connect(
        ws_url(base_url, f"/v1/sessions/{session_id}/stream{query}"), open_timeout=30, **kwargs
    )


async def recv(ws, wait_s: float = 120) -> dict[str, Any]:
    import asyncio

    return json.loads(await asyncio.wait_for(ws.recv(), wait_s))


async def send_turn(ws, text: str, client_turn_id: str | None = None) -> list[dict[str, Any]]:
    """Send a trainee turn and collect events up to ``reply_done`` or an error that ends the
    turn (an agent's failure does not)."""
    client_turn_id = client_turn_id or uuid.uuid4().hex
    await ws.send(json.dumps({"type": "turn", "client_turn_id": client_turn_id, "text": text}))
    events = []
    while True:
        event = await recv(ws)
        events.append(event)
        if event["type"] == "reply_done":
            # Every reply carries its token count, generated now or stored before.
            assert isinstance(event["output_tokens"], int) and event["output_tokens"] > 0, event
        if event["type"] == "reply_done" or (
            event["type"] == "error" and event["code"] != "agent_failed"
        ):
            return events


async def drain(ws, quiet_s: float = 15) -> list[dict[str, Any]]:
    """Events that come after a reply (the judge's late answers), until ``quiet_s`` of quiet."""
    import asyncio

    events = []
    while True:
        try:
            events.append(json.loads(await asyncio.wait_for(ws.recv(), quiet_s)))
        except TimeoutError:
            return events
