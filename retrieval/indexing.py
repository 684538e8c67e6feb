"""Chunks → vectors → Qdrant: the one ingestion path for uploads, the CLI and the benchmark."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from retrieval.chunking import Chunk, ChunkingConfig, chunk_document
from retrieval.embedder import Embedder
from retrieval.parsing import ParsedDocument
from retrieval.sparse import BM25Encoder
from retrieval.store import IndexedChunk, KnowledgeStore, new_point_id

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9(\"'])")
MAX_SENTENCES_PER_CHUNK = 48


def split_sentences(text: str) -> list[str]:
    sentences = [s.strip() for s in _SENTENCE_END.split(text) if s.strip()]
    return sentences[:MAX_SENTENCES_PER_CHUNK] or [text.strip()]


def contextual_text(title: str, chunk: Chunk) -> str:
    """What is embedded and term-indexed: the chunk under its document title and heading."""
    header = title if not chunk.heading or chunk.heading == title else f"{title} — {chunk.heading}"
    return f"{header}\n{chunk.text}" if header else chunk.text


@dataclass(frozen=True)
class DocumentInput:
    document_id: str
    parsed: ParsedDocument


@dataclass(frozen=True)
class ChunkToEmbed:
    """A chunk, the document it is part of, and the point id it is stored under."""

    document_id: str
    title: str
    chunk: Chunk
    point_id: str


@dataclass(frozen=True)
class TextsToEmbed:
    """What one batch of chunks needs embedded: each chunk under its title and heading (the
    dense vector), and each chunk's sentences, flat (its late-interaction vectors)."""

    contextual: list[str]
    sentences: list[str]
    sentence_offsets: list[int]  # chunk i's sentences: sentences[offsets[i]:offsets[i+1]]


def texts_to_embed(batch: Sequence[ChunkToEmbed]) -> TextsToEmbed:
    contextual = [contextual_text(item.title, item.chunk) for item in batch]
    # Late-interaction vectors: the title (as its own sentence) and each sentence.
    sentence_lists = [
        [item.title, *split_sentences(item.chunk.text)]
        if item.title
        else split_sentences(item.chunk.text)
        for item in batch
    ]
    return TextsToEmbed(
        contextual=contextual,
        sentences=[s for group in sentence_lists for s in group],
        sentence_offsets=[int(n) for n in np.cumsum([0] + [len(g) for g in sentence_lists])],
    )


def indexed_chunks(
    batch: Sequence[ChunkToEmbed],
    texts: TextsToEmbed,
    *,
    dense: np.ndarray,
    sentence_vectors: np.ndarray,
    tenant_id: str,
    sparse: BM25Encoder,
) -> list[IndexedChunk]:
    """The batch's points from its vectors (and BM25's, which need no model)."""
    offsets = texts.sentence_offsets
    return [
        IndexedChunk(
            id=item.point_id,
            tenant_id=tenant_id,
            document_id=item.document_id,
            document_title=item.title,
            text=item.chunk.text,
            position=item.chunk.position,
            heading=item.chunk.heading,
            page=item.chunk.page,
            dense=dense[i],
            sparse=sparse.encode_document(texts.contextual[i]),
            sentences=sentence_vectors[offsets[i] : offsets[i + 1]],
        )
        for i, item in enumerate(batch)
    ]


def embed_chunks(
    batch: Sequence[ChunkToEmbed], *, embedder: Embedder, tenant_id: str, sparse: BM25Encoder
) -> list[IndexedChunk]:
    """The batch's points, embedded by ``embedder``: the one way a chunk becomes vectors,
    for an upload and for a re-embedding with another model alike."""
    texts = texts_to_embed(batch)
    return indexed_chunks(
        batch,
        texts,
        dense=embedder.embed_documents(texts.contextual),
        sentence_vectors=embedder.embed_documents(texts.sentences),
        tenant_id=tenant_id,
        sparse=sparse,
    )


def chunk_of_payload(point_id: str, payload: dict) -> ChunkToEmbed:
    """A stored point back as the chunk it was made from (its text is in its payload)."""
    return ChunkToEmbed(
        document_id=str(payload.get("document_id", "")),
        title=str(payload.get("document_title") or ""),
        chunk=Chunk(
            text=str(payload.get("text", "")),
            position=int(payload.get("position") or 0),
            heading=payload.get("heading"),
            page=payload.get("page"),
        ),
        point_id=point_id,
    )


class IndexingPipeline:
    def __init__(
        self,
        *,
        store: KnowledgeStore,
        embedder: Embedder,
        sparse: BM25Encoder,
        chunking: ChunkingConfig,
        batch_chunks: int = 256,
    ) -> None:
        self.store = store
        self.embedder = embedder
        self.sparse = sparse
        self.chunking = chunking
        self.batch_chunks = batch_chunks

    def index(
        self,
        collection: str,
        *,
        tenant_id: str,
        documents: Iterable[DocumentInput],
        progress: Callable[[int], None] | None = None,
        embedder: Embedder | None = None,
    ) -> int:
        """Index documents into ``collection``; returns the number of chunks written.

        ``embedder``: the one that built ``collection`` (its vectors and these must be one
        model's), when it is not this pipeline's.
        """
        embedder = embedder or self.embedder
        pending: list[ChunkToEmbed] = []
        written = 0
        for document in documents:
            for chunk in chunk_document(document.parsed, self.chunking):
                pending.append(
                    ChunkToEmbed(
                        document_id=document.document_id,
                        title=document.parsed.title,
                        chunk=chunk,
                        point_id=new_point_id(),
                    )
                )
            if len(pending) >= self.batch_chunks:
                written += self._flush(collection, tenant_id, pending, embedder)
                pending = []
                if progress:
                    progress(written)
        if pending:
            written += self._flush(collection, tenant_id, pending, embedder)
            if progress:
                progress(written)
        return written

    def _flush(
        self, collection: str, tenant_id: str, batch: list[ChunkToEmbed], embedder: Embedder
    ) -> int:
        chunks = embed_chunks(batch, embedder=embedder, tenant_id=tenant_id, sparse=self.sparse)
        self.store.upsert(collection, chunks)
        return len(chunks)
