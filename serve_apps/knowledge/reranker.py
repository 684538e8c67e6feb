"""The cross-encoder reranker deployment (FlagEmbedding's ``FlagReranker``), for GPU nodes.

Only deployed when the application names a reranker model (``reranker_model`` in the Serve
config, for example ``BAAI/bge-reranker-v2-m3``): no cross-encoder weights are bundled, so
the CPU default reranks inside Qdrant with late interaction instead (``retrieval/search.py``).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from ray import serve

from serve_apps.knowledge.config import RerankerConfig
from serve_apps.knowledge.loop_calls import ReplicaLoopCaller
from serve_apps.telemetry import tracing
from serve_apps.telemetry.logs import configure_logging
from serve_apps.telemetry.metrics import product_metrics


# Serve options come from the config (RerankerConfig, serve_apps/app.py).
@serve.deployment(name="Reranker")
class RerankerDeployment:
    def __init__(self, config: RerankerConfig) -> None:
        configure_logging("reranker")
        from FlagEmbedding import FlagReranker

        encoder = config.encoder
        self._model = FlagReranker(
            encoder.model,
            use_fp16=encoder.use_fp16,
            devices=[encoder.device],
            batch_size=encoder.batch_size,
        )
        self._max_length = encoder.max_length

    def _score(self, query: str, passages: list[str]) -> list[float]:
        scores = self._model.compute_score(
            [[query, passage] for passage in passages],
            normalize=True,
            max_length=self._max_length,
        )
        return [float(s) for s in (scores if isinstance(scores, list) else [scores])]

    async def score(self, query: str, passages: list[str]) -> list[float]:
        return await asyncio.to_thread(self._score, query, passages)


class RemoteReranker:
    """The reranker deployment as a :class:`retrieval.search.PassageScorer`.

    Blocking, for worker threads: each call is made on the replica's loop through ``loop``.
    """

    def __init__(self, handle: Any, loop: ReplicaLoopCaller, *, timeout_s: float = 30.0) -> None:
        self._handle = handle
        self._loop = loop
        self._timeout_s = timeout_s

    def score(self, query: str, passages: list[str]) -> list[float]:
        started = time.perf_counter()
        with tracing.span("retrieval.rerank", {"passages": len(passages)}):
            scores = self._loop.call(
                lambda: self._handle.score.remote(query, passages), self._timeout_s
            )
        product_metrics().retrieval.observe(time.perf_counter() - started, tags={"stage": "rerank"})
        return scores
