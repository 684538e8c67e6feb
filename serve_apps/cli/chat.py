"""The terminal client: hold a conversation with a persona, the reply streaming in as it comes,
with the coach's hints, compliance findings and reviews shown beside it; ``/end`` scores it."""

from __future__ import annotations

import asyncio
import json
import sys
import uuid
from typing import Any

import httpx

from serve_apps.contracts.wire import ws_url


async def create_session(
    base_url: str, scenario: str, mode: str = "practice", headers: dict[str, str] | None = None
) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
        response = await client.post(
            "/v1/sessions", json={"scenario": scenario, "mode": mode}, headers=headers
        )
        if response.status_code != 201:
            error = response.json().get("error", {})
            raise SystemExit(f"could not start a session: {error.get('message', response.text)}")
        return response.json()


def turn_frame(text: str, client_turn_id: str | None = None) -> str:
    """A turn as the server wants it: UTF-8 as is, not ``\\u``-escaped (an escaped character
    outside Latin takes 6 to 12 bytes of the frame limit instead of 2 to 4)."""
    frame = {"type": "turn", "client_turn_id": client_turn_id or uuid.uuid4().hex, "text": text}
    return json.dumps(frame, ensure_ascii=False)


def describe(event: dict[str, Any]) -> str | None:
    """One line for an agent event (None for events shown otherwise)."""
    match event["type"]:
        case "hint":
            return f"  [coach · {event['kind']}] {event['text']}"
        case "compliance":
            return (
                f"  [compliance · {event['severity']}] {event['speaker']}: {event['description']}"
                f" — “{event['excerpt']}”"
            )
        case "review" if not event["passed"]:
            action = "trying again" if event["action"] == "retry" else "replaced"
            return f"  [reviewer] reply {action}: {'; '.join(event['issues'])}"
        case "error":
            return f"  [error · {event['code']}] {event['message']}"
        case _:
            return None


def describe_score(report: dict[str, Any]) -> str:
    lines = [f"\n{report['summary']}"]
    for criterion in report["criteria"]:
        lines.append(f"  {criterion['score']:5.1f}  {criterion['name']}")
        for check in criterion["checks"]:
            mark = "✔" if check["passed"] else "✘"
            quote = f" — “{check['evidence'][0]['quote']}”" if check["evidence"] else ""
            lines.append(f"         {mark} {check['question']}{quote}")
    return "\n".join(lines) + "\n"


async def chat(
    base_url: str, scenario: str, session_id: str | None = None, mode: str = "practice"
) -> None:
    import websockets

    if session_id is None:
        session = await create_session(base_url, scenario, mode)
        session_id = session["id"]
        personas = ", ".join(
            f"{p['name']} ({p['role']}, {p['company']})" for p in session["scenario"]["personas"]
        )
        print(f"\n{session['scenario']['title']}\nYou are talking to {personas}.")
        print(f"Session {session_id} ({mode}). Type your message; /end to finish and get your")
        print("score, /quit to leave.\n")
    async with websockets.connect(ws_url(base_url, f"/v1/sessions/{session_id}/stream")) as ws:
        idle = asyncio.Event()
        idle.set()
        reader = asyncio.create_task(_print_events(ws, idle))
        loop = asyncio.get_running_loop()
        try:
            while True:
                await idle.wait()
                line = (await loop.run_in_executor(None, lambda: input("you> "))).strip()
                if line in {"/quit", "/exit"}:
                    return
                if not line:
                    continue
                idle.clear()
                if line == "/end":
                    await ws.send(json.dumps({"type": "end"}))
                    continue
                await ws.send(turn_frame(line))
        finally:
            reader.cancel()


async def _print_events(ws: Any, idle: asyncio.Event) -> None:
    """Print what the server sends; ``idle`` is set when the trainee may type again."""
    speaking = False
    async for raw in ws:
        event = json.loads(raw)
        if event["type"] == "token":
            if not speaking:
                sys.stdout.write(f"{event['speaker']}> ")
                speaking = True
            sys.stdout.write(event["text"])
            sys.stdout.flush()
            continue
        if speaking and event["type"] in {"review", "reply_done"}:
            print()
            speaking = False
        if event["type"] == "reply_done":
            print()
            idle.set()
        elif event["type"] == "score":
            print(describe_score(event["report"]))
            idle.set()
        elif (line := describe(event)) is not None:
            print(line)
            if event["type"] == "error" and event["code"] != "agent_failed":
                idle.set()
