"""``salesboost bench swap``: conversations running through a swap of the persona's model.

K conversations talk (a trainee line, the reply, a moment of reading, again) on a stack the
bench starts (or ``--url``); after a warm-up the persona's model is swapped to the candidate
config through the API, and the conversations go on until ``--after-s`` past the swap's end.
Every event each conversation receives is timed. Written:

- ``failed_turns``: turns that ended in an ``error`` event or never got their ``reply_done``
  (goal 0);
- ``duplicated_turns``: turns answered more than once (goal 0);
- ``retried_turns``: turns told ``unavailable`` and answered when sent again with their
  ``client_turn_id`` (the documented retry);
- ``longest_pause_ms``: the longest wait between two events of one turn (the send and the
  first token, two tokens, the last token and ``reply_done``), overall and for the turns
  that overlapped the swap;
- ``ttft_ms``: time to first token before, during and after the swap (p50, p95, turns);
- ``swap``: its end state, how long it took, the versions.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

from loadtests.bench.turn import _percentile, bench_stack, engine_meta, trainee_line
from serve_apps.contracts.wire import ws_url

ADMIN = {"X-Dev-Tenant": "demo", "X-Dev-User": "admin@demo.salesboost.local"}
TRAINEE = {"X-Dev-Tenant": "demo", "X-Dev-User": "trainee@demo.salesboost.local"}
QUERY = "?dev_tenant=demo&dev_user=trainee@demo.salesboost.local"
MAX_RESENDS = 5


@dataclass(frozen=True)
class SwapBenchConfig:
    candidate: str = "npc_cpu_candidate"
    conversations: int = 4
    warm_up_s: float = 20
    after_s: float = 30
    think_s: float = 1.5
    max_tokens: int = 60
    url: str | None = None


@dataclass
class TurnRecord:
    sent: float
    times: list[float] = field(default_factory=list)  # every event's arrival
    first_token: float | None = None
    done: int = 0  # reply_done events
    error: str | None = None  # how it ended, when not with its reply
    retries: int = 0  # sent again after `unavailable`

    @property
    def end(self) -> float:
        return self.times[-1] if self.times else self.sent

    def longest_pause_s(self) -> float:
        marks = [self.sent, *self.times]
        return max((b - a for a, b in zip(marks, marks[1:], strict=False)), default=0.0)


def summarize_swap(turns: list[TurnRecord], swap_start: float, swap_end: float) -> dict[str, Any]:
    """The bench's numbers from the timed turns and the swap's window (unit tested)."""

    def ttft(window: list[TurnRecord]) -> dict[str, Any]:
        values = [(t.first_token - t.sent) * 1000 for t in window if t.first_token is not None]
        return {
            "p50": round(_percentile(values, 50), 1) if values else None,
            "p95": round(_percentile(values, 95), 1) if values else None,
            "turns": len(values),
        }

    during = [t for t in turns if t.end >= swap_start and t.sent <= swap_end]
    pauses = [t.longest_pause_s() * 1000 for t in turns]
    pauses_during = [t.longest_pause_s() * 1000 for t in during]
    return {
        "turns": len(turns),
        "failed_turns": sum(1 for t in turns if t.error is not None or t.done == 0),
        "duplicated_turns": sum(1 for t in turns if t.done > 1),
        # Told `unavailable` (a store starved for a moment) and answered when sent again.
        "retried_turns": sum(1 for t in turns if t.retries and t.done),
        "errors": sorted({t.error for t in turns if t.error}),
        "longest_pause_ms": {
            "overall": round(max(pauses, default=0.0), 1),
            "around_the_swap": round(max(pauses_during, default=0.0), 1),
        },
        "ttft_ms": {
            "before": ttft([t for t in turns if t.end < swap_start]),
            "during": ttft(during),
            "after": ttft([t for t in turns if t.sent > swap_end]),
        },
    }


async def _conversation(base_url: str, index: int, config: SwapBenchConfig, stop: asyncio.Event):
    import websockets

    async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
        response = await client.post(
            "/v1/sessions",
            json={"scenario": "crm-discovery-call", "mode": "conversation"},
            headers=TRAINEE,
        )
        response.raise_for_status()
        session_id = response.json()["id"]
    turns: list[TurnRecord] = []
    url = ws_url(base_url, f"/v1/sessions/{session_id}/stream{QUERY}")
    async with websockets.connect(url, open_timeout=30) as ws:
        number = 1
        while not stop.is_set():
            record = TurnRecord(sent=time.monotonic())
            turns.append(record)
            turn = {"type": "turn", "client_turn_id": uuid.uuid4().hex}
            turn["text"] = trainee_line(index, number)
            # A turn told `unavailable` is sent again with its client_turn_id after its
            # retry_after_s, as the product's clients do: one turn, retried.
            while True:
                await ws.send(json.dumps(turn))
                retry_after = await _answer(ws, record)
                if retry_after is None or record.retries >= MAX_RESENDS:
                    break
                record.retries += 1
                await asyncio.sleep(retry_after)
                record.error = None
            number += 1
            await asyncio.sleep(config.think_s)
    return turns


async def _answer(ws: Any, record: TurnRecord) -> float | None:
    """Every event of one turn, timed, up to its reply or error; the wait before sending it
    again when the server said `unavailable`, else None."""
    while True:
        try:
            event = json.loads(await asyncio.wait_for(ws.recv(), 120))
        except TimeoutError:
            record.error = "timeout"
            return None
        record.times.append(time.monotonic())
        if event["type"] == "token" and record.first_token is None:
            record.first_token = record.times[-1]
        elif event["type"] == "reply_done":
            record.done += 1
            return None
        elif event["type"] == "error":
            record.error = event.get("code", "error")
            if record.error == "unavailable":
                return float(event.get("retry_after_s") or 1)
            return None


async def _swap(base_url: str, config: dict[str, Any], progress) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=base_url, headers=ADMIN, timeout=60) as client:
        response = await client.post("/v1/models/npc/swap", json={"config": config})
        if response.status_code != 202:
            raise RuntimeError(f"the swap was refused: {response.status_code} {response.text}")
        started = response.json()
        progress(f"swap to {started['candidate']} from {started['previous']}")
        while True:
            await asyncio.sleep(1)
            status = (await client.get("/v1/models")).json()["roles"]["npc"]["last_swap"]
            ours = status and status["started_at"] == started["started_at"]
            if ours and status["state"] in ("done", "failed", "unchanged"):
                progress(f"swap {status['state']} {status['message']}")
                return status


def run_swap_bench(config: SwapBenchConfig, settings, progress=print) -> dict[str, Any]:
    from serve_apps.app import resolve_model_config

    candidate = yaml.safe_load(resolve_model_config(config.candidate).read_text())
    with bench_stack(
        settings, url=config.url, max_tokens=config.max_tokens, progress=progress
    ) as base_url:

        async def run() -> dict[str, Any]:
            stop = asyncio.Event()
            talking = [
                asyncio.create_task(_conversation(base_url, i, config, stop))
                for i in range(config.conversations)
            ]
            await asyncio.sleep(config.warm_up_s)
            swap_start = time.monotonic()
            status = await _swap(base_url, candidate, progress)
            swap_end = time.monotonic()
            await asyncio.sleep(config.after_s)
            stop.set()
            turns = [t for batch in await asyncio.gather(*talking) for t in batch]
            return {
                **summarize_swap(turns, swap_start, swap_end),
                "swap": {
                    "state": status["state"],
                    "message": status["message"],
                    "seconds": round(swap_end - swap_start, 1),
                    "candidate": status["candidate"],
                    "previous": status["previous"],
                },
            }

        result = asyncio.run(run())
    result["meta"] = {
        "conversations": config.conversations,
        "candidate_config": config.candidate,
        "think_s": config.think_s,
        "max_tokens": config.max_tokens,
        "warm_up_s": config.warm_up_s,
        "after_s": config.after_s,
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **engine_meta(),
    }
    return result


def write(result: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2))
