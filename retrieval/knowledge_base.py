"""A tenant's knowledge base on the hybrid store: versions behind an alias, ingest and search.

Version ``n`` of knowledge base ``kb`` is the collection ``kb.<kb>.v<n>``; the alias
``kb.<kb>`` names the live one. Ingest adds to the live version; ``new_version`` builds an
empty one beside it, ``activate`` switches the alias atomically, and the previous version
stays until it is dropped, so it can be restored.

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

import hashlib
import re
from dataclasses import dataclass

import numpy as np

from retrieval.chunking import ChunkingConfig
from retrieval.embedder import Embedder
from retrieval.indexing import DocumentInput, IndexingPipeline
from retrieval.parsing import DocumentParser
from retrieval.search import (
    HybridSearcher,
    PassageScorer,
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
    ) -> None:
        if not _SLUG.match(slug):
            raise ValueError(f"knowledge base name {slug!r}: use a-z, 0-9, '-' or '_'")
        self.slug = slug
        self._legacy_checked = False
        self.store = store
        self.embedder = embedder
        self.parser = parser or DocumentParser()
        sparse = BM25Encoder()
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

    def new_version(self) -> int:
        """Create the next version's empty collection beside the live one."""
        version = max([self.live_version() or 0, *self.versions()]) + 1
        self.store.create_collection(f"{self.alias}.v{version}", dim=self.embedder.dim)
        return version

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

    def _live_collection(self) -> str:
        if self.live_version() is None:
            self.activate(self.new_version())
        return self.alias

    def ingest(
        self, *, tenant_id: str, filename: str, data: bytes, version: int | None = None
    ) -> IngestResult:
        """Parse (refusing bad files with :class:`DocumentRejected`), chunk, embed and index.

        Into the live version, or into ``version`` while a re-index builds it beside the live one.
        """
        parsed = self.parser.parse(filename, data)
        document_id = document_id_of(data)
        collection = self._live_collection() if version is None else self._collection(version)
        # Re-uploading the same file replaces its chunks instead of duplicating them.
        self.store.delete_document(collection, tenant_id=tenant_id, document_id=document_id)
        chunks = self.pipeline.index(
            collection,
            tenant_id=tenant_id,
            documents=[DocumentInput(document_id=document_id, parsed=parsed)],
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
        query_vector: np.ndarray | None = None,
    ) -> list[ScoredChunk]:
        """``query_vector``: the query's dense embedding when the caller already has it."""
        if self.live_version() is None:
            return []
        return self.searcher.run(
            collection=self.alias,
            tenant_id=tenant_id,
            query=query,
            mode=mode,
            top_k=top_k,
            query_vector=query_vector,
        )

    def explain(self, *, tenant_id: str, query: str, top_k: int = 5) -> list[StageScores]:
        if self.live_version() is None:
            return []
        return self.searcher.explain(
            collection=self.alias, tenant_id=tenant_id, query=query, top_k=top_k
        )
