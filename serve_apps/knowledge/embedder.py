"""The embedder deployment, and the two ways the knowledge service embeds through it.

Documents always go to the deployment (:class:`RemoteEmbedder`): they come by the hundred,
and the deployment can scale out or run a large model on a GPU. A retrieval query is one
short forward pass, on every trainee turn's way to the model: with the bundled MiniLM it is
about 13 ms on one core, and the round trip to the deployment added 7-30 ms more (two hops
and a batch queue). :class:`InServiceQueryEmbedder` embeds queries in the knowledge
service's own process instead (``query_embedding: in_service``, the default); a large
embedding model should keep ``deployment``.

Both look like the in-process :class:`retrieval.embedder.Embedder` to the indexing and
search code, and add ``embed_queries_async`` for the service's event loop.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any, Literal

import numpy as np
from ray import serve

from retrieval.embedder import EMBEDDING_MODELS, Embedder

QueryEmbedding = Literal["in_service", "deployment"]


@serve.deployment(
    name="Embedder",
    ray_actor_options={"num_cpus": 1},
    max_ongoing_requests=32,
    autoscaling_config={"min_replicas": 1, "max_replicas": 2, "target_ongoing_requests": 8},
)
class EmbedderDeployment:
    def __init__(self, model: str) -> None:
        self._embedder = Embedder(model=model)
        self._embedder.warm_up()

    async def embed_queries(self, texts: list[str]) -> np.ndarray:
        return await asyncio.to_thread(self._embedder.embed_queries, texts)

    async def embed_documents(self, texts: list[str]) -> np.ndarray:
        return await asyncio.to_thread(self._embedder.embed_documents, texts)

    async def check_health(self) -> None:
        await self.embed_queries(["health"])


class RemoteEmbedder:
    """The embedder deployment behind the in-process embedder's interface.

    The blocking methods are called from worker threads (``.result()`` blocks, which an
    event loop must not do).
    """

    def __init__(self, handle: Any, model: str, *, timeout_s: float = 60.0) -> None:
        self._handle = handle
        self.spec = EMBEDDING_MODELS[model]
        self._timeout_s = timeout_s

    @property
    def dim(self) -> int:
        return self.spec.dim

    def warm_up(self) -> None:
        """The deployment warms itself up when it starts."""

    def embed_query(self, text: str) -> np.ndarray:
        return self._handle.embed_queries.remote([text]).result(timeout_s=self._timeout_s)[0]

    async def embed_queries_async(self, texts: list[str]) -> np.ndarray:
        return await asyncio.wait_for(self._handle.embed_queries.remote(texts), self._timeout_s)

    def embed_documents(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return self._handle.embed_documents.remote(texts).result(timeout_s=self._timeout_s)


class InServiceQueryEmbedder:
    """Queries embedded in this process with the deployment's model; documents by the
    deployment. The same model and code on both sides, so query and document vectors match."""

    def __init__(self, documents: RemoteEmbedder) -> None:
        self._documents = documents
        self._queries = Embedder(model=documents.spec.name)
        # The search's worker threads and the retrieval batch may embed at once, and a fast
        # tokenizer must not be entered from two threads ("Already borrowed").
        self._lock = threading.Lock()
        self.spec = documents.spec

    @property
    def dim(self) -> int:
        return self.spec.dim

    def warm_up(self) -> None:
        with self._lock:
            self._queries.warm_up()

    def embed_queries(self, texts: list[str]) -> np.ndarray:
        with self._lock:
            return self._queries.embed_queries(texts)

    def embed_query(self, text: str) -> np.ndarray:
        return self.embed_queries([text])[0]

    async def embed_queries_async(self, texts: list[str]) -> np.ndarray:
        return await asyncio.to_thread(self.embed_queries, texts)

    def embed_documents(self, texts: list[str]) -> np.ndarray:
        return self._documents.embed_documents(texts)


def service_embedder(
    handle: Any, model: str, query_embedding: QueryEmbedding
) -> RemoteEmbedder | InServiceQueryEmbedder:
    remote = RemoteEmbedder(handle, model)
    if query_embedding == "deployment":
        return remote
    embedder = InServiceQueryEmbedder(remote)
    embedder.warm_up()
    return embedder
