"""Trainee memory in Qdrant: one vector per finished session, scoped to tenant and trainee.

PostgreSQL holds the memory itself (``trainee_memories``); the vector lets the coach find,
among a trainee's past sessions, the one most like the scenario they start now.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from retrieval.store import DENSE, KnowledgeStore

MEMORY_COLLECTION = "trainee_memory"
USER_KEY = "user_id"


class QueryEmbedder(Protocol):
    @property
    def dim(self) -> int: ...

    def embed_query(self, text: str) -> np.ndarray: ...


class TraineeMemoryIndex:
    def __init__(self, store: KnowledgeStore, embedder: QueryEmbedder) -> None:
        self._store = store
        self._embedder = embedder
        self._ready = False

    def _ensure_collection(self) -> None:
        if not self._ready:
            if not self._store.collection_exists(MEMORY_COLLECTION):
                self._store.create_dense_collection(
                    MEMORY_COLLECTION, dim=self._embedder.dim, keyword_fields=[USER_KEY]
                )
            self._ready = True

    def remember(self, *, tenant_id: str, user_id: str, memory_id: str, text: str) -> None:
        self._ensure_collection()
        self._store.upsert_dense(
            MEMORY_COLLECTION,
            point_id=memory_id,
            tenant_id=tenant_id,
            vector=self._embedder.embed_query(text),
            payload={USER_KEY: user_id},
        )

    def recall(self, *, tenant_id: str, user_id: str, query: str, limit: int = 3) -> list[str]:
        """The ids of this trainee's memories nearest to ``query``, nearest first."""
        from qdrant_client import models

        self._ensure_collection()
        only_this_trainee: Any = models.FieldCondition(
            key=USER_KEY, match=models.MatchValue(value=user_id)
        )
        hits = self._store.tenant_query(
            MEMORY_COLLECTION,
            tenant_id=tenant_id,
            query=self._embedder.embed_query(query).tolist(),
            using=DENSE,
            limit=limit,
            where=only_this_trainee,
        )
        return [hit.id for hit in hits]
