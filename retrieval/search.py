"""Hybrid search: dense and sparse prefetches fused by RRF inside Qdrant, then reranking.

Two rerankers, chosen by configuration:

* the default, on the bundled models alone: late interaction and score fusion, run inside
  Qdrant (:meth:`HybridSearcher._rescoring_prefetches`);
* a cross-encoder (the BGE reranker on a GPU node): any :class:`PassageScorer`, which scores
  the fused candidates' texts against the query after Qdrant returns them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Literal, Protocol

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from retrieval.embedder import Embedder
from retrieval.sparse import BM25Encoder
from retrieval.store import DENSE, SENTENCES, SPARSE, KnowledgeStore, ScoredChunk

SearchMode = Literal["dense", "sparse", "hybrid", "hybrid_rerank"]


class Reranking(Enum):
    """The searcher's own reranker: its cross-encoder, or late interaction without one."""

    CONFIGURED = "configured"


class PassageScorer(Protocol):
    """A cross-encoder: one relevance score per passage for a query (higher is better)."""

    def score(self, query: str, passages: list[str]) -> list[float]: ...


# Which reranker a search uses: a cross-encoder, None for late interaction inside Qdrant, or
# the searcher's own (a reranker swap names one per search; in-flight searches keep theirs).
RerankerChoice = PassageScorer | None | Literal[Reranking.CONFIGURED]


class SearchConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    candidate_depth: int = Field(100, ge=1, le=1000, description="Hits per dense/sparse prefetch.")
    rerank_depth: int = Field(50, ge=1, le=500, description="Fused hits the reranker rescores.")
    top_k: int = Field(10, ge=1, le=200, description="Hits returned.")
    score_threshold: float | None = Field(None, description="Drop reranked hits below this.")


@dataclass
class StageScores:
    """Why a chunk came back: its score at each stage it reached (None: not in that stage)."""

    chunk: ScoredChunk
    dense: float | None = None
    sparse: float | None = None
    fused: float | None = None
    reranked: float | None = None
    ranks: dict[str, int] = field(default_factory=dict)


class HybridSearcher:
    def __init__(
        self,
        *,
        store: KnowledgeStore,
        embedder: Embedder,
        sparse: BM25Encoder,
        config: SearchConfig | None = None,
        cross_encoder: PassageScorer | None = None,
    ) -> None:
        self.store = store
        self.embedder = embedder
        self.sparse = sparse
        self.config = config or SearchConfig()
        self.cross_encoder = cross_encoder

    def _queries(
        self, text: str, dense_vector: np.ndarray | None = None
    ) -> tuple[list[float], Any]:
        from qdrant_client import models

        if dense_vector is None:
            dense_vector = self.embedder.embed_query(text)
        dense = dense_vector.tolist()
        encoded = self.sparse.encode_query(text)
        return dense, models.SparseVector(indices=encoded.indices, values=encoded.values)

    def _fused_prefetch(self, dense: list[float], sparse: Any, limit: int) -> Any:
        from qdrant_client import models

        return models.Prefetch(
            prefetch=[
                models.Prefetch(query=dense, using=DENSE, limit=self.config.candidate_depth),
                models.Prefetch(query=sparse, using=SPARSE, limit=self.config.candidate_depth),
            ],
            query=models.FusionQuery(fusion=models.Fusion.RRF),
            limit=limit,
        )

    def run(
        self,
        *,
        collection: str,
        tenant_id: str,
        query: str,
        mode: SearchMode = "hybrid_rerank",
        top_k: int | None = None,
        query_vector: np.ndarray | None = None,
        cross_encoder: RerankerChoice = Reranking.CONFIGURED,
    ) -> list[ScoredChunk]:
        if not query.strip():
            raise ValueError("the query is empty")
        dense, sparse = self._queries(query, query_vector)
        limit = top_k or self.config.top_k
        scorer = self._scorer(cross_encoder)
        if mode == "hybrid_rerank" and scorer is not None:
            return self._cross_encode(scorer, collection, tenant_id, query, dense, sparse, limit)
        return self._search(collection, tenant_id, mode, dense, sparse, limit)

    def _scorer(self, choice: RerankerChoice) -> PassageScorer | None:
        return self.cross_encoder if choice is Reranking.CONFIGURED else choice

    def _cross_encode(
        self,
        cross_encoder: PassageScorer,
        collection: str,
        tenant_id: str,
        query: str,
        dense: list[float],
        sparse: Any,
        limit: int,
    ) -> list[ScoredChunk]:
        """The fused candidates, rescored by the cross-encoder and cut to ``limit``."""
        candidates = self._search(
            collection, tenant_id, "hybrid", dense, sparse, self.config.rerank_depth
        )
        if not candidates:
            return []
        scores = cross_encoder.score(query, [c.payload.get("text", "") for c in candidates])
        rescored = [
            ScoredChunk(id=c.id, score=float(score), payload=c.payload)
            for c, score in zip(candidates, scores, strict=True)
        ]
        rescored.sort(key=lambda c: c.score, reverse=True)
        threshold = self.config.score_threshold
        if threshold is not None:
            rescored = [c for c in rescored if c.score >= threshold]
        return rescored[:limit]

    def _search(
        self,
        collection: str,
        tenant_id: str,
        mode: SearchMode,
        dense: list[float],
        sparse: Any,
        limit: int,
    ) -> list[ScoredChunk]:
        from qdrant_client import models

        common: dict[str, Any] = {"collection": collection, "tenant_id": tenant_id, "limit": limit}
        if mode == "dense":
            return self.store.tenant_query(query=dense, using=DENSE, **common)
        if mode == "sparse":
            return self.store.tenant_query(query=sparse, using=SPARSE, **common)
        fused = self._fused_prefetch(dense, sparse, self.config.rerank_depth)
        if mode == "hybrid":
            return self.store.tenant_query(
                query=models.FusionQuery(fusion=models.Fusion.RRF),
                prefetch=fused.prefetch,
                **common,
            )
        return self.store.tenant_query(
            query=models.FusionQuery(fusion=models.Fusion.DBSF),
            prefetch=self._rescoring_prefetches(dense, sparse, fused),
            score_threshold=self.config.score_threshold,
            **common,
        )

    def _rescoring_prefetches(self, dense: list[float], sparse: Any, fused: Any) -> list[Any]:
        """The reranker, inside Qdrant: every fused candidate is rescored three ways.

        Dense similarity of the whole chunk, BM25, and late interaction (the query against
        each sentence's vector, best match wins: ``MAX_SIM``), then the three score lists are
        normalized by their spread and summed (DBSF). On SciFact the sentence signal and the
        score-level fusion together lift nDCG@10 from 0.70 (RRF order) to about 0.73.
        """
        from qdrant_client import models

        depth = self.config.rerank_depth
        return [
            models.Prefetch(prefetch=fused, query=dense, using=DENSE, limit=depth),
            models.Prefetch(prefetch=fused, query=sparse, using=SPARSE, limit=depth),
            models.Prefetch(prefetch=fused, query=[dense], using=SENTENCES, limit=depth),
        ]

    def explain(
        self,
        *,
        collection: str,
        tenant_id: str,
        query: str,
        top_k: int | None = None,
        query_vector: np.ndarray | None = None,
        cross_encoder: RerankerChoice = Reranking.CONFIGURED,
    ) -> list[StageScores]:
        """Each returned chunk's score at every stage, for the search-testing endpoint."""
        if not query.strip():
            raise ValueError("the query is empty")
        dense, sparse = self._queries(query, query_vector)
        scorer = self._scorer(cross_encoder)
        depth, rerank_depth = self.config.candidate_depth, self.config.rerank_depth
        stages: list[tuple[str, SearchMode, int]] = [
            ("reranked", "hybrid_rerank", top_k or self.config.top_k),
            ("dense", "dense", depth),
            ("sparse", "sparse", depth),
            ("fused", "hybrid", rerank_depth),
        ]
        explained: dict[str, StageScores] = {}
        for stage, mode, limit in stages:
            if stage == "reranked" and scorer is not None:
                hits = self._cross_encode(
                    scorer, collection, tenant_id, query, dense, sparse, limit
                )
            else:
                hits = self._search(collection, tenant_id, mode, dense, sparse, limit)
            if stage == "reranked":
                explained = {hit.id: StageScores(chunk=hit) for hit in hits}
            for rank, hit in enumerate(hits, start=1):
                if hit.id in explained:
                    setattr(explained[hit.id], stage, hit.score)
                    explained[hit.id].ranks[stage] = rank
        return list(explained.values())
