"""The LLM server deployment: Ray Serve LLM's ``LLMServer``, with a first token that never waits
and a plain-text chat stream for callers inside the cluster.

Ray Serve LLM groups a stream's chunks over ``stream_batching_interval_ms`` (50 ms by default)
so that fewer, larger objects cross from the engine's replica to its caller. The first token
waits out that interval like any other, which is time to first token lost for nothing. Here
the first chunks go out the moment they exist and only the later ones are grouped: on a
small machine each object costs every process it passes through (the LLM server, the
orchestrator, the gateway, the proxy) CPU that the engine would otherwise have.

The OpenAI routes (``chat``, ``completions``) stay for clients that speak OpenAI. The
orchestrator, which needs neither OpenAI's request model nor its server-sent events, streams
through :meth:`SalesBoostLLMServer.chat_text`: the same chat template, the model's default
sampling parameters and the same engine, without the request validation, the per-token
response objects and their JSON on both ends (about 12 ms of a one-conversation first token
on 2 cores).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

from ray.serve.llm.deployment import LLMServer

from models.cpu_layout import parse_cpu_list, processes_started_on

T = TypeVar("T")


async def first_at_once_then_batched(
    source: AsyncIterator[T], interval_s: float
) -> AsyncIterator[list[T]]:
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
            if pending:
                batch = pending.copy()
                pending.clear()
                yield batch
            if finished.is_set():
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


@dataclass(frozen=True)
class TextDelta:
    """Part of a streamed reply: the text since the previous delta, and the reply's output
    tokens so far."""

    text: str
    output_tokens: int


class SalesBoostLLMServer(LLMServer):
    """``LLMServer`` whose streams send their first chunk without waiting for the interval,
    whose engine processes run on the engine's cores, and which streams plain text to the
    cluster's own callers (:meth:`chat_text`)."""

    async def start(self) -> None:
        # The engine's processes are started from this thread, synchronously, in here.
        with engine_processes_on_engine_cores():
            await super().start()
        engine = getattr(self.engine, "_engine_client", None)
        if engine is None or not hasattr(engine, "generate"):
            # Ray Serve LLM keeps vLLM's engine client here; the pinned version is checked
            # at start rather than at the first trainee turn.
            raise RuntimeError("this Ray Serve LLM version does not expose vLLM's engine client")
        self._vllm: Any = engine
        self._default_sampling = engine.model_config.get_diff_sampling_param()

    def _batch_output_stream(self, generator: AsyncIterator[T]) -> AsyncIterator[list[T]]:
        return first_at_once_then_batched(generator, self._get_batch_interval_ms() / 1000)

    async def chat_text(
        self, messages: list[dict[str, str]], max_tokens: int, temperature: float
    ) -> AsyncIterator[list[TextDelta]]:
        """The reply to ``messages`` as text deltas, grouped as ``chat`` groups its stream;
        the last delta carries the reply's output token count. An engine error (a prompt
        longer than the model's context, say) is raised to the caller."""
        from vllm import SamplingParams
        from vllm.sampling_params import RequestOutputKind

        params = SamplingParams(
            **{
                **self._default_sampling,  # the model's generation config, as OpenAI's path
                "max_tokens": max_tokens,
                "temperature": temperature,
                "output_kind": RequestOutputKind.DELTA,
            }
        )
        prompt = self._vllm.tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, tokenize=False
        )

        async def deltas() -> AsyncIterator[TextDelta]:
            produced = 0
            async for output in self._vllm.generate(prompt, params, uuid.uuid4().hex):
                completion = output.outputs[0]
                produced += len(completion.token_ids)
                if completion.text or output.finished:
                    yield TextDelta(text=completion.text, output_tokens=produced)

        async for batch in self._batch_output_stream(deltas()):
            yield batch
