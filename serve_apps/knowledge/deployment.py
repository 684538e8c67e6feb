"""The knowledge service deployment: ingest, search and versions of tenants' knowledge bases.

It owns the Qdrant client. In local mode (the embedded default) Qdrant lives in one folder
that only one process may open, so the service runs as one replica and serializes access
to the folder; with a Qdrant server (``SALESBOOST_QDRANT_URL``) it can scale out. Every
method takes the tenant, and every query goes through the store's tenant filter.

The work is blocking (parsing, Qdrant local mode, waiting on the embedder deployment), so
each call runs in a worker thread and the replica's event loop stays free.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from typing import Any

from ray import serve

from retrieval import compat
from retrieval.chunking import ChunkingConfig
from retrieval.excerpts import ExcerptLimits, fit_excerpts
from retrieval.knowledge_base import KnowledgeBase
from retrieval.memory import TraineeMemoryIndex
from retrieval.parsing import DocumentParser, DocumentRejected
from retrieval.store import KnowledgeStore
from serve_apps.connections import Connections
from serve_apps.contracts.knowledge import (
    ExplainedChunk,
    IngestOutcome,
    KnowledgeBaseState,
    Refusal,
    RetrievedChunk,
    StageScore,
)
from serve_apps.knowledge.config import KnowledgeConfig
from serve_apps.knowledge.embedder import RemoteEmbedder
from serve_apps.knowledge.loop_calls import ReplicaLoopCaller
from serve_apps.knowledge.reranker import RemoteReranker
from serve_apps.telemetry import tracing
from serve_apps.telemetry.logs import configure_logging
from serve_apps.telemetry.metrics import product_metrics

log = logging.getLogger("salesboost.knowledge")

STAGES = ("dense", "sparse", "fused", "reranked")


def collection_slug(tenant_id: str, knowledge_base: str) -> str:
    """Each tenant's knowledge base has its own collections (and the tenant filter besides)."""
    return f"{tenant_id.replace('-', '')}_{knowledge_base}"


# Serve options come from the config (KnowledgeConfig, serve_apps/app.py).
@serve.deployment(name="KnowledgeService")
class KnowledgeService:
    def __init__(
        self,
        config: KnowledgeConfig,
        embedder: Any,
        embedding_model: str,
        reranker: Any | None = None,
    ) -> None:
        configure_logging("knowledge")
        qdrant = Connections()
        if qdrant.qdrant_url:
            api_key = qdrant.qdrant_api_key.get_secret_value() if qdrant.qdrant_api_key else None
            self._store = KnowledgeStore(url=qdrant.qdrant_url, api_key=api_key)
            self._guard: Any = contextlib.nullcontext()
        else:
            config.qdrant_folder.mkdir(parents=True, exist_ok=True)
            compat.install()
            self._store = KnowledgeStore(path=str(config.qdrant_folder))
            self._guard = threading.Lock()
        loop = ReplicaLoopCaller.of_running_loop()
        self._embedder = RemoteEmbedder(embedder, embedding_model, loop)
        self._search = config.search
        self._cross_encoder = RemoteReranker(reranker, loop) if reranker is not None else None
        self._parser = DocumentParser()
        self._bases: dict[tuple[str, str, str], KnowledgeBase] = {}
        self._memory = TraineeMemoryIndex(self._store, self._embedder)

    def _base(self, tenant_id: str, knowledge_base: str, chunking: dict | None) -> KnowledgeBase:
        config = ChunkingConfig.model_validate(chunking or {})
        key = (tenant_id, knowledge_base, config.model_dump_json())
        if key not in self._bases:
            self._bases[key] = KnowledgeBase(
                slug=collection_slug(tenant_id, knowledge_base),
                store=self._store,
                embedder=self._embedder,
                parser=self._parser,
                chunking=config,
                search=self._search,
                cross_encoder=self._cross_encoder,
            )
        return self._bases[key]

    async def _run(self, fn, *args, **kwargs):
        def guarded():
            with self._guard:
                return fn(*args, **kwargs)

        return await asyncio.to_thread(guarded)

    # --- documents ------------------------------------------------------------------------

    async def ingest(
        self,
        *,
        tenant_id: str,
        knowledge_base: str,
        chunking: dict | None,
        filename: str,
        data: bytes,
        version: int | None = None,
    ) -> IngestOutcome | Refusal:
        base = self._base(tenant_id, knowledge_base, chunking)
        try:
            result = await self._run(
                base.ingest, tenant_id=tenant_id, filename=filename, data=data, version=version
            )
        except DocumentRejected as exc:
            log.info("refused %r for %s/%s: %s", filename, tenant_id, knowledge_base, exc.reason)
            return Refusal(status=exc.status, reason=exc.reason)
        return IngestOutcome(
            document_id=result.document_id, title=result.title, chunks=result.chunks
        )

    async def remove(self, *, tenant_id: str, knowledge_base: str, document_id: str) -> None:
        base = self._base(tenant_id, knowledge_base, None)
        await self._run(base.remove, tenant_id=tenant_id, document_id=document_id)

    # --- search ---------------------------------------------------------------------------

    async def retrieve(
        self,
        *,
        tenant_id: str,
        knowledge_base: str,
        query: str,
        top_k: int = 5,
        token_budget: int | None = None,
        sentences_per_chunk: int = 2,
    ) -> list[RetrievedChunk]:
        """The ``top_k`` chunks for ``query``; with a ``token_budget``, each cut to its
        sentences that match the query, best first, while they fit (what a prompt or an
        agent is given; ``retrieval/excerpts.py``)."""
        base = self._base(tenant_id, knowledge_base, None)
        latency = product_metrics().retrieval
        started = time.perf_counter()
        # Embedded before taking the store's lock, so that turns arriving together are
        # embedded together (the embedder batches them) rather than one per lock holder.
        with tracing.span("retrieval.embed"):
            dense = await self._embedder.embed_query_async(query)
        embedded = time.perf_counter()
        latency.observe(embedded - started, tags={"stage": "embed"})
        # Dense and sparse search, fusion and the late-interaction rerank (or the
        # cross-encoder's, a span of its own) in the store, behind its lock.
        with tracing.span("retrieval.search", {"top_k": top_k}) as search_span:
            hits = await self._run(
                base.search, tenant_id=tenant_id, query=query, top_k=top_k, query_vector=dense
            )
            search_span.set_attribute("hits", len(hits))
        done = time.perf_counter()
        latency.observe(done - embedded, tags={"stage": "search"})
        latency.observe(done - started, tags={"stage": "total"})
        chunks = [RetrievedChunk.from_hit(h.id, h.score, h.payload) for h in hits]
        if token_budget is None:
            return chunks
        limits = ExcerptLimits(sentences_per_chunk=sentences_per_chunk, token_budget=token_budget)
        cut = fit_excerpts([c.text for c in chunks], query, limits)
        return [c.model_copy(update={"text": t}) for c, t in zip(chunks, cut, strict=False)]

    async def explain(
        self, *, tenant_id: str, knowledge_base: str, query: str, top_k: int = 5
    ) -> list[ExplainedChunk]:
        base = self._base(tenant_id, knowledge_base, None)
        explained = await self._run(base.explain, tenant_id=tenant_id, query=query, top_k=top_k)
        return [
            ExplainedChunk(
                chunk=RetrievedChunk.from_hit(e.chunk.id, e.chunk.score, e.chunk.payload),
                stages={
                    stage: StageScore(score=getattr(e, stage), rank=e.ranks[stage])
                    for stage in STAGES
                    if getattr(e, stage) is not None
                },
            )
            for e in explained
        ]

    # --- versions -------------------------------------------------------------------------

    async def state(self, *, tenant_id: str, knowledge_base: str) -> KnowledgeBaseState:
        base = self._base(tenant_id, knowledge_base, None)

        def read() -> KnowledgeBaseState:
            return KnowledgeBaseState(live_version=base.live_version(), versions=base.versions())

        return await self._run(read)

    async def new_version(self, *, tenant_id: str, knowledge_base: str) -> int:
        return await self._run(self._base(tenant_id, knowledge_base, None).new_version)

    async def activate(self, *, tenant_id: str, knowledge_base: str, version: int) -> None:
        await self._run(self._base(tenant_id, knowledge_base, None).activate, version)

    async def drop_version(self, *, tenant_id: str, knowledge_base: str, version: int) -> None:
        await self._run(self._base(tenant_id, knowledge_base, None).drop_version, version)

    # --- trainee memory ---------------------------------------------------------------------

    async def remember(self, *, tenant_id: str, user_id: str, memory_id: str, text: str) -> None:
        await self._run(
            self._memory.remember,
            tenant_id=tenant_id,
            user_id=user_id,
            memory_id=memory_id,
            text=text,
        )

    async def recall(
        self, *, tenant_id: str, user_id: str, query: str, limit: int = 3
    ) -> list[str]:
        return await self._run(
            self._memory.recall, tenant_id=tenant_id, user_id=user_id, query=query, limit=limit
        )

    async def check_health(self) -> None:
        await self._run(self._store.check_health)
