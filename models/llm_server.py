"""The LLM server deployment: Ray Serve LLM's ``LLMServer``, with a first token that never waits.

Ray Serve LLM groups a stream's chunks over ``stream_batching_interval_ms`` (50 ms by default)
so that fewer, larger objects cross from the engine's replica to its caller. The first token
waits out that interval like any other, which is time to first token lost for nothing. Here
the first chunks go out the moment they exist and only the later ones are grouped: on a
small machine each object costs every process it passes through (the LLM server, the
orchestrator, the gateway, the proxy) CPU that the engine would otherwise have.

What this reaches of Ray Serve LLM's and vLLM's internals goes through ``models.compat``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from typing import Any, TypeVar

from ray.serve.llm import LLMConfig

from models import compat
from models.cpu_dtype import DtypeChoice, cpu_dtype, detect_cpu
from models.cpu_layout import parse_cpu_list, processes_started_on
from models.llm import CPU_DTYPE_SETTING_KEY

# A child of Serve's logger: the choice lands in the replica's log beside the engine's own.
log = logging.getLogger("ray.serve.salesboost.llm")

T = TypeVar("T")


async def first_at_once_then_batched(
    source: AsyncIterator[T], interval_s: float
) -> AsyncGenerator[list[T], None]:
    """Lists of ``source``'s items: what arrives first, at once; then, every ``interval_s``,
    what arrived in it; what is left when ``source`` ends, at once. ``source``'s error is
    raised after the items before it."""
    if interval_s <= 0:
        async for item in source:
            yield [item]
        return
    pending: list[T] = []
    arrived = asyncio.Event()
    finished = asyncio.Event()

    async def read() -> None:
        try:
            async for item in source:
                pending.append(item)
                arrived.set()
        finally:
            finished.set()
            arrived.set()

    reader = asyncio.create_task(read())
    try:
        # Items the engine hands over together (the role chunk and the first token) are all
        # pending by the time this wakes: the reader only yields the loop when it waits.
        await arrived.wait()
        while True:
            # Read before the batch is taken: the reader may append the stream's last items and
            # finish while the caller holds a batch, and those must still go out. Once
            # ``finished`` was seen set, nothing can arrive after this batch.
            source_ended = finished.is_set()
            if pending:
                batch = pending.copy()
                pending.clear()
                yield batch
            if source_ended:
                break
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(finished.wait(), interval_s)
        reader.result()
    finally:
        if not reader.done():
            reader.cancel()


@contextlib.contextmanager
def engine_processes_on_engine_cores() -> Iterator[None]:
    """Processes started inside run on the cores vLLM's CPU worker is bound to.

    A local stack runs every serving process on the cores the engine does not use
    (``models.cpu_layout``), and so would vLLM's scheduler process, which this replica
    starts. The scheduler and the worker take turns (it plans a step, the worker computes
    it, each waits for the other by spinning with ``sched_yield``), so they share cores
    cheaply; put on the serving cores instead, the scheduler queued behind the gateway's and
    orchestrator's work at every step (8 conversations: 56 tokens/s against 96 for a bare
    engine; 90 with the scheduler beside its worker).
    """
    bind = os.environ.get("VLLM_CPU_OMP_THREADS_BIND", "auto")
    if bind in ("auto", "nobind") or not hasattr(os, "sched_setaffinity"):
        yield
        return
    with processes_started_on(parse_cpu_list(bind)):
        yield


def choose_dtype_on_this_node(llm_config: LLMConfig | Any) -> DtypeChoice | None:
    """Set a CPU engine's dtype from the CPU of the node its replica runs on.

    The builder chose already, on the machine that built the application; on a cluster that
    is the head node, whose CPU need not be the workers'.
    """
    setting = (llm_config.experimental_configs or {}).get(CPU_DTYPE_SETTING_KEY)
    if setting is None:  # a GPU engine: the config's dtype stands
        return None
    choice = cpu_dtype(setting)
    llm_config.engine_kwargs["dtype"] = choice.dtype
    log.info("engine dtype %s (%s)", choice.describe(), detect_cpu().describe())
    return choice


class FirstTokenAtOnceLLMServer(compat.LLMServerCompat):
    """``LLMServer`` whose streams send their first chunk without waiting for the interval,
    whose CPU engine runs in the dtype its node's CPU computes natively, and whose engine
    processes run on the engine's cores."""

    async def start(self) -> None:
        compat.install()
        self._dtype_choice = choose_dtype_on_this_node(self.served_config)
        # The engine's processes are started from this thread, synchronously, in here.
        with engine_processes_on_engine_cores():
            await super().start()

    async def engine_info(self) -> dict[str, Any]:
        """The dtype the running engine computes in, as vLLM's own model config has it, and
        why it was chosen."""
        client = self.engine_client()
        running = getattr(getattr(client, "model_config", None), "dtype", None)
        dtype = str(running or self.served_config.engine_kwargs.get("dtype", "auto"))
        choice = getattr(self, "_dtype_choice", None)
        return {
            "model_id": self.served_config.model_id,
            "dtype": dtype.removeprefix("torch."),
            "reason": choice.reason if choice is not None else "set by the model config",
            "cpu": detect_cpu().describe(),
        }

    async def count_tokens(self, text: str) -> int:
        """How many tokens ``text`` is in the running engine's own tokenizer. (Ray Serve
        LLM's ``tokenize`` answers only for a model served for the tokenization task; a chat
        model is not.)"""
        client = self.engine_client()
        if client is None:
            raise RuntimeError("the engine has not started")
        return len(client.get_tokenizer().encode(text, add_special_tokens=False))

    def batch_output_stream(self, generator: AsyncIterator[T]) -> AsyncGenerator[list[T], None]:
        return first_at_once_then_batched(generator, self.batch_interval_s())
