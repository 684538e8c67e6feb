"""The terminal client: hold a conversation with a persona, the reply streaming in as it comes."""

from __future__ import annotations

import asyncio
import json
import sys
import uuid
from typing import Any

import httpx


async def create_session(
    base_url: str, scenario: str, headers: dict[str, str] | None = None
) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
        response = await client.post("/v1/sessions", json={"scenario": scenario}, headers=headers)
        if response.status_code != 201:
            error = response.json().get("error", {})
            raise SystemExit(f"could not start a session: {error.get('message', response.text)}")
        return response.json()


def ws_url(base_url: str, path: str) -> str:
    return base_url.replace("http://", "ws://", 1).replace("https://", "wss://", 1) + path


async def chat(base_url: str, scenario: str, session_id: str | None = None) -> None:
    import websockets

    if session_id is None:
        session = await create_session(base_url, scenario)
        session_id = session["id"]
        personas = ", ".join(
            f"{p['name']} ({p['role']}, {p['company']})" for p in session["scenario"]["personas"]
        )
        print(f"\n{session['scenario']['title']}\nYou are talking to {personas}.")
        print(f"Session {session_id}. Type your message; /quit to leave.\n")
    async with websockets.connect(ws_url(base_url, f"/v1/sessions/{session_id}/stream")) as ws:
        loop = asyncio.get_running_loop()
        while True:
            line = await loop.run_in_executor(None, lambda: input("you> "))
            if line.strip() in {"/quit", "/exit"}:
                return
            if not line.strip():
                continue
            await ws.send(
                json.dumps({"type": "turn", "client_turn_id": uuid.uuid4().hex, "text": line})
            )
            speaking = False
            while True:
                event = json.loads(await ws.recv())
                if event["type"] == "token":
                    if not speaking:
                        sys.stdout.write(f"{event['speaker']}> ")
                        speaking = True
                    sys.stdout.write(event["text"])
                    sys.stdout.flush()
                elif event["type"] == "reply_done":
                    print("\n")
                    break
                elif event["type"] == "error":
                    print(f"\n[error: {event['message']}]\n")
                    break
