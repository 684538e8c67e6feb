"""The knowledge service deployment: ingest, search and versions of tenants' knowledge bases.

It owns the Qdrant client. In local mode (the embedded default) Qdrant lives in one folder
that only one process may open, so the service runs as one replica and serializes access
to the folder; with a Qdrant server (``SALESBOOST_QDRANT_URL``) it can scale out. Every
method takes the tenant, and every query goes through the store's tenant filter.

The work is blocking (parsing, Qdrant local mode, waiting on the embedder deployment), so
each call runs in a worker thread and the replica's event loop stays free.

It also runs the changes of the embedder and the reranker (``encoder_swap.py``): an
embedder swap rebuilds every knowledge base here, beside its live version, while searches
go on; each search embeds its query by the embedder of the version it searches and is
scored by the reranker active when it began.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import threading
import time
import uuid
from typing import Any

import numpy as np
from ray import serve

from models.encoders import EncoderDeploymentSettings
from retrieval import compat
from retrieval.chunking import ChunkingConfig
from retrieval.embedder import EmbedderRecord
from retrieval.excerpts import ExcerptLimits, fit_excerpts
from retrieval.knowledge_base import KnowledgeBase, QueryVector
from retrieval.memory import TraineeMemoryIndex
from retrieval.parsing import DocumentParser, DocumentRejected
from retrieval.search import PassageScorer, RerankerChoice, Reranking
from retrieval.store import KnowledgeStore
from serve_apps.connections import Connections
from serve_apps.contracts.knowledge import (
    ExplainedChunk,
    IngestOutcome,
    KnowledgeBaseState,
    Refusal,
    RetrievedChunk,
    SearchExplanation,
    StageScore,
)
from serve_apps.knowledge.config import KnowledgeConfig
from serve_apps.knowledge.embedder import ServedEmbedders
from serve_apps.knowledge.encoder_routing import EncoderRoutingStore
from serve_apps.knowledge.encoder_swap import (
    EncoderChangeRefused,
    EncoderChanges,
    KnowledgeBaseRef,
    LiveState,
)
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


# An alias of a company's knowledge base: ``kb.<company id, 32 hex>_<name>`` (or the legacy
# ``kb_...``, read until the knowledge base is next used).
_BASE_ALIAS = re.compile(r"^kb[._]([0-9a-f]{32})_([a-z0-9][a-z0-9_-]*)$")


def knowledge_bases_of_aliases(aliases: list[str]) -> list[KnowledgeBaseRef]:
    """Every company's knowledge base that has a live version, from the store's aliases."""
    found = set()
    for alias in aliases:
        if (match := _BASE_ALIAS.match(alias)) is not None:
            found.add(KnowledgeBaseRef(str(uuid.UUID(hex=match.group(1))), match.group(2)))
    return sorted(found)


# Serve options come from the config (KnowledgeConfig, serve_apps/app.py).
@serve.deployment(name="KnowledgeService")
class KnowledgeService:
    def __init__(
        self,
        config: KnowledgeConfig,
        embedder: Any,
        embedder_settings: EncoderDeploymentSettings,
        reranker: Any | None = None,
        reranker_settings: EncoderDeploymentSettings | None = None,
    ) -> None:
        """``embedder_settings``: the Embedder deployment's own model (it built the versions
        from before records); ``reranker_settings``: the Reranker deployment's, when one runs."""
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
        self._loop = ReplicaLoopCaller.of_running_loop()
        self._embedders = ServedEmbedders(embedder, embedder_settings, self._loop)
        self._embedder = self._embedders.configured
        self._search = config.search
        self._reranker = reranker
        self._cross_encoder = RemoteReranker(reranker, self._loop) if reranker is not None else None
        self._cross_encoders: dict[str, RemoteReranker] = {}
        self._parser = DocumentParser()
        self._bases: dict[tuple[str, str, str], KnowledgeBase] = {}
        # Trainee memories stay with the configured embedder: they are few, and rebuilt
        # from PostgreSQL with it (an embedder swap moves the knowledge bases).
        self._memory = TraineeMemoryIndex(self._store, self._embedder)
        redis = None
        if qdrant.redis_url:
            from redis.asyncio import Redis

            # Short waits: the active reranker is read on the search path (once a second).
            redis = Redis.from_url(qdrant.redis_url, socket_timeout=2, socket_connect_timeout=2)
        self._routing = EncoderRoutingStore(
            redis, embedder=embedder_settings, reranker=reranker_settings
        )
        self._changes = EncoderChanges(
            self._routing, _KnowledgeIndex(self), reranker_served=reranker is not None
        )

    def _base(self, tenant_id: str, knowledge_base: str, chunking: dict | None) -> KnowledgeBase:
        config = ChunkingConfig.model_validate(chunking or {})
        key = (tenant_id, knowledge_base, config.model_dump_json())
        if key not in self._bases:
            self._bases[key] = KnowledgeBase(
                slug=collection_slug(tenant_id, knowledge_base),
                store=self._store,
                embedder=self._embedder,
                embedders=self._embedders,
                parser=self._parser,
                chunking=config,
                search=self._search,
                cross_encoder=self._cross_encoder,
            )
        return self._bases[key]

    async def _reranker_choice(self) -> RerankerChoice:
        """The reranker for a search that begins now: the active one, read once per search
        (a swap moves the next searches; this one keeps it to the end)."""
        active = await self._routing.active_reranker()
        if active is None:
            return None  # late interaction inside Qdrant
        configured = self._routing.configured_reranker
        if configured is not None and active.version == configured.version:
            return Reranking.CONFIGURED
        if self._reranker is None:
            log.error("%s is active but no Reranker deployment runs", active.version)
            return None
        scorer: PassageScorer | None = self._cross_encoders.get(active.version)
        if scorer is None:
            scorer = self._cross_encoders[active.version] = RemoteReranker(
                self._reranker, self._loop, settings=active
            )
        return scorer

    async def _query_vector(self, base: KnowledgeBase, query: str) -> QueryVector | None:
        """The query embedded, before taking the store, by the embedder the live version
        had at its last search (the search checks it is still that one)."""
        record = base.live_embedder
        if record is None:
            live = await self._run(base.live)
            if live is None:
                return None
            record = live.embedder
        vector = await self._embedders.embedder_for(record).embed_query_async(query)
        return QueryVector(embedder=record.version, vector=np.asarray(vector))

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
                base.ingest,
                tenant_id=tenant_id,
                filename=filename,
                data=data,
                version=version,
                new_embedder=await self._routing.active_embedder(),
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
        scorer = await self._reranker_choice()
        latency = product_metrics().retrieval
        started = time.perf_counter()
        # Embedded before taking the store's lock, so that turns arriving together are
        # embedded together (the embedder batches them) rather than one per lock holder.
        with tracing.span("retrieval.embed"):
            dense = await self._query_vector(base, query)
        embedded = time.perf_counter()
        latency.observe(embedded - started, tags={"stage": "embed"})
        # Dense and sparse search, fusion and the late-interaction rerank (or the
        # cross-encoder's, a span of its own) in the store, behind its lock.
        with tracing.span("retrieval.search", {"top_k": top_k}) as search_span:
            hits = await self._run(
                base.search,
                tenant_id=tenant_id,
                query=query,
                top_k=top_k,
                query_vector=dense,
                cross_encoder=scorer,
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
    ) -> SearchExplanation:
        base = self._base(tenant_id, knowledge_base, None)
        scorer = await self._reranker_choice()
        dense = await self._query_vector(base, query)
        explained = await self._run(
            base.explain,
            tenant_id=tenant_id,
            query=query,
            top_k=top_k,
            query_vector=dense,
            cross_encoder=scorer,
        )
        return SearchExplanation(
            version=explained.version,
            embedder=explained.embedder,
            hits=[
                ExplainedChunk(
                    chunk=RetrievedChunk.from_hit(e.chunk.id, e.chunk.score, e.chunk.payload),
                    stages={
                        stage: StageScore(score=getattr(e, stage), rank=e.ranks[stage])
                        for stage in STAGES
                        if getattr(e, stage) is not None
                    },
                )
                for e in explained.hits
            ],
        )

    # --- versions -------------------------------------------------------------------------

    async def state(self, *, tenant_id: str, knowledge_base: str) -> KnowledgeBaseState:
        base = self._base(tenant_id, knowledge_base, None)

        def read() -> KnowledgeBaseState:
            return KnowledgeBaseState(
                live_version=base.live_version(),
                versions=base.versions(),
                version_embedders=base.version_embedders(),
            )

        return await self._run(read)

    async def new_version(self, *, tenant_id: str, knowledge_base: str) -> int:
        """An empty version beside the live one (a re-index), built by the active embedder."""
        await self._refuse_during_embedder_change()
        embedder = await self._routing.active_embedder(fresh=True)
        return await self._run(self._base(tenant_id, knowledge_base, None).new_version, embedder)

    async def activate(self, *, tenant_id: str, knowledge_base: str, version: int) -> None:
        await self._refuse_during_embedder_change()
        await self._run(self._base(tenant_id, knowledge_base, None).activate, version)

    async def _refuse_during_embedder_change(self) -> None:
        if await self._changes.embedder_change_running():
            raise EncoderChangeRefused(
                "an embedder change is moving every knowledge base to new versions: re-index "
                "or restore a version after it (salesboost models status)"
            )

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

    # --- the embedder and the reranker ------------------------------------------------------

    async def encoder_status(self) -> dict[str, Any]:
        """The active embedder and reranker, whether they are the Serve config's, and the
        last change of each."""
        return await self._changes.status()

    async def swap_embedder(self, settings: dict[str, Any]) -> dict[str, Any]:
        return await self._changes.swap_embedder(settings)

    async def restore_embedder(self, version: str) -> dict[str, Any]:
        return await self._changes.restore_embedder(version)

    async def swap_reranker(self, settings: dict[str, Any]) -> dict[str, Any]:
        return await self._changes.swap_reranker(settings)


class _KnowledgeIndex:
    """The knowledge service as the encoder changes see it (``encoder_swap.KnowledgeIndex``)."""

    # A model loading for the first time, on a busy machine, takes this long at most.
    PROBE_TIMEOUT_S = 600.0

    def __init__(self, service: KnowledgeService) -> None:
        self._service = service

    def _base(self, base: KnowledgeBaseRef) -> KnowledgeBase:
        return self._service._base(base.tenant_id, base.name, None)

    async def knowledge_bases(self) -> list[KnowledgeBaseRef]:
        aliases = await self._service._run(self._service._store.aliases)
        return knowledge_bases_of_aliases(list(aliases))

    async def live(self, base: KnowledgeBaseRef) -> LiveState | None:
        live = await self._service._run(self._base(base).live)
        return None if live is None else LiveState(live.version, live.embedder.version)

    async def rebuild(self, base: KnowledgeBaseRef, embedder: EmbedderRecord) -> int | None:
        # Not through _run: the rebuild holds the store only to read and write a page, never
        # while the embedder works, so searches and uploads go on between.
        rebuilt = await asyncio.to_thread(
            self._base(base).rebuild,
            tenant_id=base.tenant_id,
            embedder=embedder,
            store_lock=self._service._guard,
        )
        if rebuilt is not None:
            log.info(
                "rebuilt %s/%s by %s: version %d (was %d), %d chunks",
                base.tenant_id,
                base.name,
                embedder.version,
                rebuilt.version,
                rebuilt.previous,
                rebuilt.chunks,
            )
        return None if rebuilt is None else rebuilt.version

    async def restore(self, base: KnowledgeBaseRef, embedder_version: str) -> int | None:
        knowledge_base = self._base(base)

        def restore() -> int | None:
            version = knowledge_base.latest_version_by(embedder_version)
            if version is not None:
                knowledge_base.activate(version)
            return version

        return await self._service._run(restore)

    async def find_embedder(self, embedder_version: str) -> EmbedderRecord | None:
        for base in await self.knowledge_bases():
            knowledge_base = self._base(base)

            def find(kb: KnowledgeBase = knowledge_base) -> EmbedderRecord | None:
                version = kb.latest_version_by(embedder_version)
                return None if version is None else kb.embedder_of(version)

            if (record := await self._service._run(find)) is not None:
                return record
        return None

    async def probe_embedder(self, embedder: EmbedderRecord) -> None:
        vector = await self._service._embedders.embedder_for(embedder).embed_query_async(
            "Is this embedder ready?", timeout_s=self.PROBE_TIMEOUT_S
        )
        if np.asarray(vector).shape != (embedder.dim,):
            raise ValueError(
                f"it gave a vector of shape {np.asarray(vector).shape}, not ({embedder.dim},)"
            )

    async def probe_reranker(self, reranker: EncoderDeploymentSettings) -> None:
        if self._service._reranker is None:
            raise ValueError("no Reranker deployment runs")
        scorer = RemoteReranker(self._service._reranker, self._service._loop, settings=reranker)
        scores = await scorer.score_async(
            "Is this reranker ready?", ["A passage to score."], self.PROBE_TIMEOUT_S
        )
        if len(scores) != 1:
            raise ValueError(f"it gave {len(scores)} scores for one passage")
