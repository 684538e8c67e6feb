"""The Qdrant hybrid store: dense, BM25-style sparse and sentence vectors in one collection.

Each knowledge-base version is its own collection; an alias names the live one, so a
re-index is built beside it and switched atomically, and the previous version can be put
back. Every query goes through :meth:`KnowledgeStore.tenant_query`, the one place that adds
the tenant filter.
"""

from __future__ import annotations

import gc
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from retrieval.sparse import SparseVector

DENSE = "dense"
SPARSE = "bm25"
SENTENCES = "sentences"
TENANT_KEY = "tenant_id"


class StoreUnavailableError(RuntimeError):
    """Qdrant did not answer (after retries); the message says where it was looked for."""


@dataclass(frozen=True)
class IndexedChunk:
    """A chunk with its vectors and the payload that says where it came from."""

    id: str
    tenant_id: str
    document_id: str
    document_title: str
    text: str
    position: int
    heading: str | None
    page: int | None
    dense: np.ndarray
    sparse: SparseVector
    sentences: np.ndarray  # one row per sentence: the late-interaction vectors


@dataclass(frozen=True)
class ScoredChunk:
    id: str
    score: float
    payload: dict[str, Any]


def _filter(tenant_id: str, extra: Any | None = None) -> Any:
    from qdrant_client import models

    must: list[Any] = [
        models.FieldCondition(key=TENANT_KEY, match=models.MatchValue(value=tenant_id))
    ]
    if extra is not None:
        must.append(extra)
    return models.Filter(must=must)


def _keep_loaded_points_out_of_gc() -> None:
    """Move the points local mode just loaded out of the cyclic garbage collector's sight.

    Local mode holds every point as Python objects (tens of thousands of lists and models);
    each full collection walks them all, which showed up as 100 ms+ stalls in search latency.
    They live as long as the client, so they are frozen into the permanent generation.
    """
    gc.collect()
    gc.freeze()


class KnowledgeStore:
    """A Qdrant server (``url``) or local mode in a folder (``path``); local mode scores in
    bulk once the process has run :func:`retrieval.compat.install`."""

    def __init__(
        self,
        *,
        path: str | None = None,
        url: str | None = None,
        api_key: str | None = None,
        retries: int = 3,
        timeout_s: float = 10.0,
    ) -> None:
        if (path is None) == (url is None):
            raise ValueError("give exactly one of path (local mode) or url (Qdrant server)")
        from qdrant_client import QdrantClient

        self.where = path or url
        # Local mode: this process alone opens the folder, so what it read stays true until
        # it changes it itself.
        self.local = path is not None
        # Each collection's metadata as read, in local mode (where only this process changes
        # it): a search reads its version's record without asking local mode to count points.
        self._metadata: dict[str, dict[str, Any]] = {}
        self.retries = retries
        if path is not None:
            self.client = QdrantClient(path=path)
            _keep_loaded_points_out_of_gc()
        else:
            self.client = QdrantClient(url=url, api_key=api_key, timeout=int(timeout_s))

    # --- resilience ---------------------------------------------------------------------

    def close(self) -> None:
        """Release the client (local mode: the folder's lock) now, not at interpreter exit."""
        self.client.close()

    def _call(self, operation: str, fn, *args, **kwargs):
        delay = 0.2
        last: Exception
        for attempt in range(1, self.retries + 1):
            try:
                return fn(*args, **kwargs)
            except (ConnectionError, TimeoutError, OSError) as exc:
                last = exc
            except Exception as exc:  # qdrant_client wraps transport errors in its own types
                if type(exc).__name__ not in {"ResponseHandlingException", "ApiException"}:
                    raise
                last = exc
            if attempt < self.retries:
                time.sleep(delay)
                delay *= 2
        raise StoreUnavailableError(
            f"Qdrant at {self.where} did not answer {operation} after {self.retries} tries: {last}"
        ) from last

    def check_health(self) -> None:
        self._call("a health check", self.client.get_collections)

    # --- collections and versions -------------------------------------------------------

    def create_collection(self, name: str, *, dim: int, metadata: dict | None = None) -> None:
        """A knowledge-base version's collection; ``metadata``: what it records of itself
        (the embedder that builds it)."""
        from qdrant_client import models

        self._metadata.pop(name, None)
        self._call(
            "create_collection",
            self.client.create_collection,
            collection_name=name,
            metadata=metadata,
            vectors_config={
                DENSE: models.VectorParams(size=dim, distance=models.Distance.COSINE),
                SENTENCES: models.VectorParams(
                    size=dim,
                    distance=models.Distance.COSINE,
                    multivector_config=models.MultiVectorConfig(
                        comparator=models.MultiVectorComparator.MAX_SIM
                    ),
                ),
            },
            sparse_vectors_config={
                SPARSE: models.SparseVectorParams(modifier=models.Modifier.IDF),
            },
        )
        self._call(
            "create_payload_index",
            self.client.create_payload_index,
            collection_name=name,
            field_name=TENANT_KEY,
            field_schema=models.PayloadSchemaType.KEYWORD,
        )

    def create_dense_collection(
        self, name: str, *, dim: int, keyword_fields: Sequence[str]
    ) -> None:
        """A collection of single dense vectors (trainee memories), tenant field indexed."""
        from qdrant_client import models

        self._call(
            "create_collection",
            self.client.create_collection,
            collection_name=name,
            vectors_config={DENSE: models.VectorParams(size=dim, distance=models.Distance.COSINE)},
        )
        for field_name in (TENANT_KEY, *keyword_fields):
            self._call(
                "create_payload_index",
                self.client.create_payload_index,
                collection_name=name,
                field_name=field_name,
                field_schema=models.PayloadSchemaType.KEYWORD,
            )

    def upsert_dense(
        self, collection: str, *, point_id: str, tenant_id: str, vector: np.ndarray, payload: dict
    ) -> None:
        from qdrant_client import models

        point = models.PointStruct(
            id=point_id, vector={DENSE: vector.tolist()}, payload={**payload, TENANT_KEY: tenant_id}
        )
        self._call(
            "upsert", self.client.upsert, collection_name=collection, points=[point], wait=True
        )

    def drop_collection(self, name: str) -> None:
        self._metadata.pop(name, None)
        self._call("delete_collection", self.client.delete_collection, collection_name=name)

    def collection_names(self) -> list[str]:
        response = self._call("get_collections", self.client.get_collections)
        return [c.name for c in response.collections]

    def collection_exists(self, name: str) -> bool:
        return bool(self._call("collection_exists", self.client.collection_exists, name))

    def alias_target(self, alias: str) -> str | None:
        return self.aliases().get(alias)

    def aliases(self) -> dict[str, str]:
        """Every alias and the collection it names."""
        aliases = self._call("get_aliases", self.client.get_aliases).aliases
        return {a.alias_name: a.collection_name for a in aliases}

    def collection_metadata(self, name: str) -> dict[str, Any]:
        """What a collection records of itself (empty when nothing)."""
        if name in self._metadata:
            return dict(self._metadata[name])
        info = self._call("get_collection", self.client.get_collection, collection_name=name)
        metadata = dict(info.config.metadata or {})
        if self.local:
            self._metadata[name] = metadata
        return dict(metadata)

    def set_collection_metadata(self, name: str, metadata: dict[str, Any]) -> None:
        """Merge ``metadata`` into what the collection records."""
        self._metadata.pop(name, None)
        self._call(
            "update_collection",
            self.client.update_collection,
            collection_name=name,
            metadata=metadata,
        )

    def dense_dim(self, name: str) -> int:
        """The size of a knowledge-base collection's chunk vectors."""
        info = self._call("get_collection", self.client.get_collection, collection_name=name)
        vectors = info.config.params.vectors
        return int(vectors[DENSE].size if isinstance(vectors, dict) else vectors.size)

    def point_alias(self, alias: str, collection: str, *, replacing: str | None = None) -> None:
        """Make ``alias`` name ``collection`` in one atomic operation (deleting the alias
        ``replacing`` in the same one: a rename)."""
        from qdrant_client import models

        operations: list[Any] = []
        for old in (alias, replacing):
            if old is not None and self.alias_target(old) is not None:
                operations.append(
                    models.DeleteAliasOperation(delete_alias=models.DeleteAlias(alias_name=old))
                )
        operations.append(
            models.CreateAliasOperation(
                create_alias=models.CreateAlias(collection_name=collection, alias_name=alias)
            )
        )
        self._call(
            "update_collection_aliases",
            self.client.update_collection_aliases,
            change_aliases_operations=operations,
        )

    # --- writing ------------------------------------------------------------------------

    def upsert(self, collection: str, chunks: Sequence[IndexedChunk]) -> None:
        from qdrant_client import models

        points = [
            models.PointStruct(
                id=chunk.id,
                vector={
                    DENSE: chunk.dense.tolist(),
                    SPARSE: models.SparseVector(
                        indices=chunk.sparse.indices, values=chunk.sparse.values
                    ),
                    SENTENCES: chunk.sentences.tolist(),
                },
                payload={
                    TENANT_KEY: chunk.tenant_id,
                    "document_id": chunk.document_id,
                    "document_title": chunk.document_title,
                    "text": chunk.text,
                    "position": chunk.position,
                    "heading": chunk.heading,
                    "page": chunk.page,
                },
            )
            for chunk in chunks
        ]
        if points:
            self._call(
                "upsert", self.client.upsert, collection_name=collection, points=points, wait=True
            )

    def delete_document(self, collection: str, *, tenant_id: str, document_id: str) -> None:
        from qdrant_client import models

        selector = models.FilterSelector(
            filter=_filter(
                tenant_id,
                models.FieldCondition(
                    key="document_id", match=models.MatchValue(value=document_id)
                ),
            )
        )
        self._call(
            "delete", self.client.delete, collection_name=collection, points_selector=selector
        )

    # --- reading: every query passes here ----------------------------------------------

    def tenant_scroll(
        self,
        collection: str,
        *,
        tenant_id: str,
        limit: int = 128,
        offset: Any = None,
        where: Any | None = None,
        payload: list[str] | bool = True,
    ) -> tuple[list[ScoredChunk], Any]:
        """A page of ``tenant_id``'s points (payloads only, in id order) and the offset of the
        next page (None after the last): what a re-embedding reads, under the tenant filter."""
        if not tenant_id:
            raise ValueError("reading a knowledge base needs a tenant")
        points, next_offset = self._call(
            "scroll",
            self.client.scroll,
            collection_name=collection,
            scroll_filter=_filter(tenant_id, where),
            limit=limit,
            offset=offset,
            with_payload=payload,
            with_vectors=False,
        )
        chunks = [ScoredChunk(id=str(p.id), score=0.0, payload=p.payload or {}) for p in points]
        return chunks, next_offset

    def document_chunk_counts(self, collection: str, *, tenant_id: str) -> dict[str, int]:
        """How many chunks each of ``tenant_id``'s documents has in ``collection``."""
        counts: dict[str, int] = {}
        offset: Any = None
        while True:
            page, offset = self.tenant_scroll(
                collection, tenant_id=tenant_id, limit=1024, offset=offset, payload=["document_id"]
            )
            for point in page:
                document_id = str(point.payload.get("document_id", ""))
                counts[document_id] = counts.get(document_id, 0) + 1
            if offset is None:
                return counts

    def tenant_query(
        self,
        collection: str,
        *,
        tenant_id: str,
        query: Any,
        using: str | None = None,
        prefetch: Any = None,
        limit: int = 10,
        score_threshold: float | None = None,
        where: Any | None = None,
    ) -> list[ScoredChunk]:
        """Run one Qdrant query restricted to ``tenant_id`` (and ``where``), prefetches included."""
        if not tenant_id:
            raise ValueError("a knowledge query needs a tenant")
        tenant_filter = _filter(tenant_id, where)
        prefetches = prefetch if isinstance(prefetch, list) else [prefetch] if prefetch else None
        response = self._call(
            "query_points",
            self.client.query_points,
            collection_name=collection,
            query=query,
            using=using,
            prefetch=[_with_filter(p, tenant_filter) for p in prefetches] if prefetches else None,
            query_filter=tenant_filter,
            limit=limit,
            score_threshold=score_threshold,
            with_payload=True,
        )
        return [
            ScoredChunk(id=str(p.id), score=float(p.score), payload=p.payload or {})
            for p in response.points
        ]


def _with_filter(prefetch: Any, tenant_filter: Any) -> Any:
    """Copy a prefetch (and its nested prefetches) with the tenant filter applied."""
    nested = prefetch.prefetch
    if nested is not None:
        nested = [
            _with_filter(p, tenant_filter)
            for p in (nested if isinstance(nested, list) else [nested])
        ]
    return prefetch.model_copy(update={"filter": tenant_filter, "prefetch": nested})


def new_point_id() -> str:
    return str(uuid.uuid4())
