"""Blocking handle calls from worker threads are made on the replica's loop."""

from __future__ import annotations

import asyncio
import threading

import pytest

from serve_apps.knowledge.loop_calls import ReplicaLoopCaller


async def test_a_worker_thread_gets_the_answer_of_a_call_made_on_the_loop():
    caller = ReplicaLoopCaller.of_running_loop()
    loop_thread = threading.get_ident()
    made_on: list[int] = []

    async def fake_handle_call(text: str) -> str:  # stands in for handle.method.remote(text)
        made_on.append(threading.get_ident())
        await asyncio.sleep(0)
        return text.upper()

    answer = await asyncio.to_thread(caller.call, lambda: fake_handle_call("hello"), 5)
    assert answer == "HELLO"
    assert made_on == [loop_thread]


async def test_an_error_on_the_loop_reaches_the_waiting_thread():
    caller = ReplicaLoopCaller.of_running_loop()

    async def failing() -> None:
        raise ValueError("embedder refused")

    with pytest.raises(ValueError, match="embedder refused"):
        await asyncio.to_thread(caller.call, failing, 5)


async def test_a_call_that_takes_too_long_times_out():
    caller = ReplicaLoopCaller.of_running_loop()

    async def never() -> None:
        await asyncio.Event().wait()

    with pytest.raises(TimeoutError):
        await asyncio.to_thread(caller.call, never, 0.05)


async def test_a_blocking_call_on_the_loop_itself_is_refused_instead_of_hanging():
    caller = ReplicaLoopCaller.of_running_loop()

    async def anything() -> int:
        return 1

    with pytest.raises(RuntimeError, match="hang"):
        caller.call(anything, 5)
