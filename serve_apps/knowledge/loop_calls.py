"""Blocking calls to other deployments from the knowledge service's worker threads.

Indexing and search are blocking code (parsing, Qdrant local mode) that runs in worker
threads, and it calls the embedder (and reranker) deployments as it goes. A deployment
handle's router can live on the replica's own event loop (``cluster/local_stack.py`` sets that
for speed), and then it takes calls only from that loop. So a worker thread does not call the
handle itself: it hands the call to the loop and waits for the answer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


class ReplicaLoopCaller:
    """Runs handle calls on one event loop for threads that must wait for their answers."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    @classmethod
    def of_running_loop(cls) -> ReplicaLoopCaller:
        """For the loop the caller runs on (a replica's constructor runs on its loop)."""
        return cls(asyncio.get_running_loop())

    def call(self, request: Callable[[], Awaitable[T]], timeout_s: float) -> T:
        """Make ``request()`` on the loop and wait up to ``timeout_s`` for what it returns.

        ``request`` makes the handle call (``lambda: handle.method.remote(...)``), so that the
        call itself, not just the wait, happens on the loop.
        """
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self._loop:
            raise RuntimeError("a blocking call on the loop that must answer it would hang it")

        async def on_loop() -> T:
            return await asyncio.wait_for(request(), timeout_s)

        return asyncio.run_coroutine_threadsafe(on_loop(), self._loop).result()
