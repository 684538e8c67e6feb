"""A tenant's knowledge base on the hybrid store: versions behind an alias, ingest and search.

Version ``n`` of knowledge base ``kb`` is the collection ``kb.<kb>.v<n>``; the alias
``kb.<kb>`` names the live one. Ingest adds to the live version; ``new_version`` builds an
empty one beside it, ``activate`` switches the alias atomically, and the previous version
stays until it is dropped, so it can be restored.

Each version records the embedder that built it (its collection's metadata:
:class:`~retrieval.embedder.EmbedderRecord`); a version from before records is the default
embedder's (the one this knowledge base is given). Everything that reads or writes a
version's vectors uses that version's embedder: an upload into it, and a search, which
resolves the live version once and then embeds the query and searches that collection (not
the alias, which may move meanwhile), so no query ever meets vectors of another model.
``rebuild`` makes a new version with another embedder from the stored chunks (their text is
in their payloads: nothing is parsed again) and switches to it when it is complete.

Names are unambiguous because a knowledge base's name cannot contain the ``.`` that
separates its parts: no alias is another knowledge base's collection, and no collection is
two knowledge bases'. Before, they were ``kb_<kb>`` and ``kb_<kb>_v<n>``, so the alias of
``alpha_v1`` was the name of ``alpha``'s first version. Those legacy names are still read:
a legacy alias is moved to the new name the first time the knowledge base is used (the
collection it names stays as it is: Qdrant cannot rename one), and legacy versions count
among the versions (``kb_<kb>_v<n>`` with digits only after the last ``_v`` is one
knowledge base's, whatever the name).
"""

from __future__ import annotations

import contextlib
import hashlib
import re
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from retrieval.chunking import ChunkingConfig
from retrieval.embedder import Embedder, EmbedderRecord
from retrieval.indexing import DocumentInput, IndexingPipeline, chunk_of_payload, embed_chunks
from retrieval.parsing import DocumentParser
from retrieval.search import (
    HybridSearcher,
    PassageScorer,
    RerankerChoice,
    Reranking,
    SearchConfig,
    SearchMode,
    StageScores,
)
from retrieval.sparse import BM25Encoder
from retrieval.store import KnowledgeStore, ScoredChunk

# The store's name of a company's knowledge base, "<company id>_<name>" (retrieval.names
# bounds the name itself): never a ".", which separates the parts of collection names.
_SLUG = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
_VERSION_SUFFIX = re.compile(r"(?:\.|_)v([0-9]+)$")


def document_id_of(data: bytes) -> str:
    """A document's id in the index: the same file always gets the same id."""
    return hashlib.sha256(data).hexdigest()[:32]


@dataclass(frozen=True)
class IngestResult:
    document_id: str
    title: str
    chunks: int


class EmbedderDirectory(Protocol):
    """The embedders that built a knowledge base's versions, found by their records."""

    def embedder_for(self, record: EmbedderRecord) -> Embedder: ...


class OneEmbedder:
    """A directory of one embedder (tests, benchmarks, tools): a version another one built
    is an error, never searched with this one."""

    def __init__(self, embedder: Embedder) -> None:
        self._embedder = embedder

    def embedder_for(self, record: EmbedderRecord) -> Embedder:
        if record.version != self._embedder.record.version:
            raise EmbedderUnavailable(
                f"this version was built by {record.version}; only "
                f"{self._embedder.record.version} is here"
            )
        return self._embedder


class EmbedderUnavailable(RuntimeError):
    """The embedder a version records cannot be had here."""


class RebuildConflict(RuntimeError):
    """The live version changed while a rebuild read it: the rebuild is dropped."""


@dataclass(frozen=True)
class QueryVector:
    """A query's dense vector and the embedder that made it."""

    embedder: str
    vector: np.ndarray


@dataclass(frozen=True)
class LiveVersion:
    version: int
    collection: str
    embedder: EmbedderRecord


@dataclass(frozen=True)
class SearchResult:
    """What a search found, and in which version, by which embedder's query vector."""

    version: int | None
    embedder: str | None
    hits: list[Any]  # ScoredChunk, or StageScores for an explanation


@dataclass(frozen=True)
class Rebuilt:
    version: int
    previous: int
    chunks: int


class KnowledgeBase:
    def __init__(
        self,
        *,
        slug: str,
        store: KnowledgeStore,
        embedder: Embedder,
        parser: DocumentParser | None = None,
        chunking: ChunkingConfig | None = None,
        search: SearchConfig | None = None,
        cross_encoder: PassageScorer | None = None,
        embedders: EmbedderDirectory | None = None,
    ) -> None:
        """``embedder``: the default one, which built the versions that record none and
        builds new ones unless told otherwise; ``embedders``: where every other version's
        embedder is found (only ``embedder`` when not given)."""
        if not _SLUG.match(slug):
            raise ValueError(f"knowledge base name {slug!r}: use a-z, 0-9, '-' or '_'")
        self.slug = slug
        self._legacy_checked = False
        self.store = store
        self.embedder = embedder
        self.embedders: EmbedderDirectory = embedders or OneEmbedder(embedder)
        # The live version's embedder as the last search found it: which embedder to embed
        # the next query with before taking the store (a hint; the search checks it).
        self.live_embedder: EmbedderRecord | None = None
        self.parser = parser or DocumentParser()
        sparse = BM25Encoder()
        self.sparse = sparse
        self.pipeline = IndexingPipeline(
            store=store, embedder=embedder, sparse=sparse, chunking=chunking or ChunkingConfig()
        )
        self.searcher = HybridSearcher(
            store=store,
            embedder=embedder,
            sparse=sparse,
            config=search,
            cross_encoder=cross_encoder,
        )

    @property
    def alias(self) -> str:
        if not self._legacy_checked:
            self._adopt_legacy_alias()
        return f"kb.{self.slug}"

    def _adopt_legacy_alias(self) -> None:
        """Move a live alias of the legacy naming (``kb_<kb>``) to ``kb.<kb>``, once."""
        new, legacy = f"kb.{self.slug}", f"kb_{self.slug}"
        if self.store.alias_target(new) is None:
            target = self.store.alias_target(legacy)
            if target is not None:
                try:
                    self.store.point_alias(new, target, replacing=legacy)
                except Exception:
                    if self.store.alias_target(new) is None:  # not moved by another replica
                        raise
        self._legacy_checked = True

    def live_version(self) -> int | None:
        target = self.store.alias_target(self.alias)
        if target is None:
            return None
        found = _VERSION_SUFFIX.search(target)
        if found is None:
            raise ValueError(f"knowledge base {self.slug!r}: its alias names {target!r}")
        return int(found.group(1))

    def new_version(self, embedder: EmbedderRecord | None = None) -> int:
        """Create the next version's empty collection beside the live one, recording the
        embedder that builds it (the default one unless ``embedder`` says)."""
        record = embedder or self.embedder.record
        version = max([self.live_version() or 0, *self.versions()]) + 1
        name = f"{self.alias}.v{version}"
        self.store.create_collection(name, dim=record.dim, metadata=record.metadata())
        return version

    # --- which embedder built which version -------------------------------------------------

    def _record_of(self, collection: str) -> EmbedderRecord:
        """The embedder that built ``collection``: its record, or the default embedder for a
        collection from before records."""
        record = EmbedderRecord.from_metadata(self.store.collection_metadata(collection))
        return record or self.embedder.record

    def embedder_of(self, version: int) -> EmbedderRecord:
        return self._record_of(self._collection(version))

    def version_embedders(self) -> dict[int, str]:
        """Each version's embedder (``model@hash``)."""
        return {v: self.embedder_of(v).version for v in self.versions()}

    def record_unrecorded_versions(self) -> list[int]:
        """Write the default embedder into every version from before records whose vectors
        are its size, so that they stay its own when the default changes (a new Serve
        config). Returns the versions written."""
        written = []
        default = self.embedder.record
        for version in self.versions():
            name = self._collection(version)
            if EmbedderRecord.from_metadata(self.store.collection_metadata(name)) is not None:
                continue
            if self.store.dense_dim(name) != default.dim:
                continue  # another model's, from before records: nobody knows which
            self.store.set_collection_metadata(name, default.metadata())
            written.append(version)
        return written

    def live(self) -> LiveVersion | None:
        """The live version, its collection and its embedder, read once."""
        target = self.store.alias_target(self.alias)
        if target is None:
            return None
        found = _VERSION_SUFFIX.search(target)
        if found is None:
            raise ValueError(f"knowledge base {self.slug!r}: its alias names {target!r}")
        return LiveVersion(
            version=int(found.group(1)), collection=target, embedder=self._record_of(target)
        )

    def latest_version_by(self, embedder_version: str) -> int | None:
        """The newest version the embedder ``embedder_version`` built, if one is kept."""
        built = [v for v, e in self.version_embedders().items() if e == embedder_version]
        return max(built) if built else None

    def activate(self, version: int) -> None:
        if not self.store.collection_exists(self._collection(version)):
            raise ValueError(f"knowledge base {self.slug!r} has no version {version}")
        self.store.point_alias(self.alias, self._collection(version))

    def _collection(self, version: int) -> str:
        """The collection of ``version``: its own name, or its legacy name where only that
        exists."""
        name, legacy = f"{self.alias}.v{version}", f"kb_{self.slug}_v{version}"
        if not self.store.collection_exists(name) and self.store.collection_exists(legacy):
            return legacy
        return name

    def versions(self) -> list[int]:
        """Every version that exists, live or not, oldest first."""
        own = re.compile(rf"(?:{re.escape(self.alias)}\.|kb_{re.escape(self.slug)}_)v([0-9]+)")
        names = self.store.collection_names()
        return sorted({int(m.group(1)) for n in names if (m := own.fullmatch(n))})

    def drop_version(self, version: int) -> None:
        if version == self.live_version():
            raise ValueError(f"version {version} is live; activate another one first")
        self.store.drop_collection(self._collection(version))

    def _live_collection(self, embedder: EmbedderRecord | None) -> str:
        """The live version's collection (by name: the alias may move), the first version
        made with ``embedder`` when there is none."""
        live = self.live()
        if live is not None:
            return live.collection
        version = self.new_version(embedder)
        self.activate(version)
        return self._collection(version)

    def ingest(
        self,
        *,
        tenant_id: str,
        filename: str,
        data: bytes,
        version: int | None = None,
        new_embedder: EmbedderRecord | None = None,
    ) -> IngestResult:
        """Parse (refusing bad files with :class:`DocumentRejected`), chunk, embed and index.

        Into the live version, or into ``version`` while a re-index builds it beside the live
        one; by the embedder that built that version. ``new_embedder``: the one that builds
        the first version, when there is none yet.
        """
        parsed = self.parser.parse(filename, data)
        document_id = document_id_of(data)
        if version is None:
            collection = self._live_collection(new_embedder)
        else:
            collection = self._collection(version)
        embedder = self.embedders.embedder_for(self._record_of(collection))
        # Re-uploading the same file replaces its chunks instead of duplicating them.
        self.store.delete_document(collection, tenant_id=tenant_id, document_id=document_id)
        chunks = self.pipeline.index(
            collection,
            tenant_id=tenant_id,
            documents=[DocumentInput(document_id=document_id, parsed=parsed)],
            embedder=embedder,
        )
        return IngestResult(document_id=document_id, title=parsed.title, chunks=chunks)

    def remove(self, *, tenant_id: str, document_id: str) -> None:
        if self.live_version() is not None:
            self.store.delete_document(self.alias, tenant_id=tenant_id, document_id=document_id)

    def search(
        self,
        *,
        tenant_id: str,
        query: str,
        mode: SearchMode = "hybrid_rerank",
        top_k: int = 5,
        query_vector: QueryVector | np.ndarray | None = None,
        cross_encoder: RerankerChoice = Reranking.CONFIGURED,
    ) -> list[ScoredChunk]:
        """``query_vector``: the query's dense embedding when the caller already has it (used
        only when the live version's embedder made it)."""
        return self.search_live(
            tenant_id=tenant_id,
            query=query,
            mode=mode,
            top_k=top_k,
            query_vector=query_vector,
            cross_encoder=cross_encoder,
        ).hits

    def search_live(
        self,
        *,
        tenant_id: str,
        query: str,
        mode: SearchMode = "hybrid_rerank",
        top_k: int = 5,
        query_vector: QueryVector | np.ndarray | None = None,
        cross_encoder: RerankerChoice = Reranking.CONFIGURED,
    ) -> SearchResult:
        """The search, with the version it searched and the embedder of its query vector."""
        live = self.live()
        if live is None:
            return SearchResult(version=None, embedder=None, hits=[])
        hits = self.searcher.run(
            collection=live.collection,
            tenant_id=tenant_id,
            query=query,
            mode=mode,
            top_k=top_k,
            query_vector=self._query_vector(live, query, query_vector),
            cross_encoder=cross_encoder,
        )
        return SearchResult(version=live.version, embedder=live.embedder.version, hits=hits)

    def explain(
        self,
        *,
        tenant_id: str,
        query: str,
        top_k: int = 5,
        query_vector: QueryVector | np.ndarray | None = None,
        cross_encoder: RerankerChoice = Reranking.CONFIGURED,
    ) -> SearchResult:
        """Each hit's scores at every stage (:class:`StageScores`), and where it searched."""
        live = self.live()
        if live is None:
            return SearchResult(version=None, embedder=None, hits=[])
        explained: list[StageScores] = self.searcher.explain(
            collection=live.collection,
            tenant_id=tenant_id,
            query=query,
            top_k=top_k,
            query_vector=self._query_vector(live, query, query_vector),
            cross_encoder=cross_encoder,
        )
        return SearchResult(version=live.version, embedder=live.embedder.version, hits=explained)

    def _query_vector(
        self, live: LiveVersion, query: str, given: QueryVector | np.ndarray | None
    ) -> np.ndarray:
        """The query embedded by the live version's embedder: ``given`` when that one made
        it (a bare array is taken as the default embedder's), else embedded now."""
        self.live_embedder = live.embedder
        if isinstance(given, np.ndarray):
            given = QueryVector(embedder=self.embedder.record.version, vector=given)
        if given is not None and given.embedder == live.embedder.version:
            return given.vector
        return self.embedders.embedder_for(live.embedder).embed_query(query)

    # --- a new version by another embedder ------------------------------------------------------

    def rebuild(
        self,
        *,
        tenant_id: str,
        embedder: EmbedderRecord,
        store_lock: AbstractContextManager[Any] | None = None,
        page_size: int = 64,
        progress: Callable[[int], None] | None = None,
    ) -> Rebuilt | None:
        """A new version of the live one, every chunk embedded again by ``embedder``, built
        beside it and made live when complete; None when there is no live version.

        The chunks are read from the live version a page at a time; the store is held
        (``store_lock``) only to read and write, never while the embedder works, so searches
        and uploads go on meanwhile. Before the switch, under the lock, documents that
        changed meanwhile (their chunk counts differ) are copied again or removed. Anything
        failing drops the new version: the live one stays.
        """
        lock = store_lock or contextlib.nullcontext()
        model = self.embedders.embedder_for(embedder)
        with lock:
            live = self.live()
            if live is None:
                return None
            self.record_unrecorded_versions()
            live = self.live()
            assert live is not None
            version = self.new_version(embedder)
            target = self._collection(version)
        try:
            copied = self._copy_all(
                live.collection, target, tenant_id, model, lock, page_size, progress
            )
            with lock:
                if self.store.alias_target(self.alias) != live.collection:
                    raise RebuildConflict(
                        f"{self.slug}: the live version changed while version {version} was "
                        "built; it stays as it is"
                    )
                self._catch_up(live.collection, target, tenant_id, model)
                self.activate(version)
        except BaseException:
            with lock, contextlib.suppress(Exception):
                self.drop_version(version)
            raise
        return Rebuilt(version=version, previous=live.version, chunks=copied)

    def _copy_all(
        self,
        source: str,
        target: str,
        tenant_id: str,
        model: Embedder,
        lock: AbstractContextManager[Any],
        page_size: int,
        progress: Callable[[int], None] | None,
    ) -> int:
        copied, offset = 0, None
        while True:
            with lock:
                page, offset = self.store.tenant_scroll(
                    source, tenant_id=tenant_id, limit=page_size, offset=offset
                )
            if page:
                chunks = embed_chunks(
                    [chunk_of_payload(p.id, p.payload) for p in page],
                    embedder=model,
                    tenant_id=tenant_id,
                    sparse=self.sparse,
                )
                with lock:
                    self.store.upsert(target, chunks)
                copied += len(chunks)
                if progress:
                    progress(copied)
            if offset is None:
                return copied

    def _catch_up(self, source: str, target: str, tenant_id: str, model: Embedder) -> None:
        """Make ``target`` hold the documents ``source`` holds now (uploads and removals
        made while it was built); the caller holds the store."""
        from qdrant_client import models

        now = self.store.document_chunk_counts(source, tenant_id=tenant_id)
        built = self.store.document_chunk_counts(target, tenant_id=tenant_id)
        for document_id in sorted(set(now) | set(built)):
            if now.get(document_id) == built.get(document_id):
                continue
            self.store.delete_document(target, tenant_id=tenant_id, document_id=document_id)
            if document_id not in now:
                continue
            only = models.FieldCondition(
                key="document_id", match=models.MatchValue(value=document_id)
            )
            offset = None
            while True:
                page, offset = self.store.tenant_scroll(
                    source, tenant_id=tenant_id, limit=256, offset=offset, where=only
                )
                if page:
                    self.store.upsert(
                        target,
                        embed_chunks(
                            [chunk_of_payload(p.id, p.payload) for p in page],
                            embedder=model,
                            tenant_id=tenant_id,
                            sparse=self.sparse,
                        ),
                    )
                if offset is None:
                    break
