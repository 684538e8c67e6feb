"""The embedder deployment: FlagEmbedding dense embeddings for queries and documents.

The knowledge service reaches it through :class:`RemoteEmbedder`, which looks like the
in-process :class:`retrieval.embedder.Embedder` to the indexing and search code.
"""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
from ray import serve

from retrieval.embedder import EMBEDDING_MODELS, Embedder
from serve_apps.knowledge.config import EmbedderConfig
from serve_apps.knowledge.loop_calls import ReplicaLoopCaller
from serve_apps.telemetry.logs import configure_logging


# Serve options come from the config (EmbedderConfig, serve_apps/app.py).
@serve.deployment(name="Embedder")
class EmbedderDeployment:
    def __init__(self, config: EmbedderConfig) -> None:
        configure_logging("embedder")
        encoder = config.encoder
        self._embedder = Embedder(
            model=encoder.model,
            device=encoder.device,
            use_fp16=encoder.use_fp16,
            batch_size=encoder.batch_size,
        )
        self._embedder.warm_up()

    async def embed_query(self, text: str) -> np.ndarray:
        return await self._embed_queries(text)

    # Trainee turns that arrive together (a class practising at once) share one forward pass:
    # nothing waits for a batch to fill, but what queues while one runs goes in the next.
    @serve.batch(max_batch_size=16, batch_wait_timeout_s=0)
    async def _embed_queries(self, texts: list[str]) -> list[np.ndarray]:
        return list(await asyncio.to_thread(self._embedder.embed_queries, texts))

    async def embed_documents(self, texts: list[str]) -> np.ndarray:
        return await asyncio.to_thread(self._embedder.embed_documents, texts)

    async def check_health(self) -> None:
        await self.embed_query("health")


class RemoteEmbedder:
    """The embedder deployment behind the in-process embedder's interface.

    Its blocking methods are for worker threads: each call is made on the replica's loop
    through ``loop`` and the thread waits for the answer.
    """

    def __init__(
        self, handle: Any, model: str, loop: ReplicaLoopCaller, *, timeout_s: float = 60.0
    ) -> None:
        self._handle = handle
        self._loop = loop
        self.spec = EMBEDDING_MODELS[model]
        self._timeout_s = timeout_s

    @property
    def dim(self) -> int:
        return self.spec.dim

    def warm_up(self) -> None:
        """The deployment warms itself up when it starts."""

    def embed_query(self, text: str) -> np.ndarray:
        return self._loop.call(lambda: self._handle.embed_query.remote(text), self._timeout_s)

    async def embed_query_async(self, text: str) -> np.ndarray:
        """The same, from an event loop (no worker thread held while the embedder works)."""
        return await asyncio.wait_for(self._handle.embed_query.remote(text), self._timeout_s)

    def embed_documents(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return self._loop.call(lambda: self._handle.embed_documents.remote(texts), self._timeout_s)
