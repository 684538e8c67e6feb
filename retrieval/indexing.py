"""Chunks → vectors → Qdrant: the one ingestion path for uploads, the CLI and the benchmark."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
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
    ) -> int:
        """Index documents into ``collection``; returns the number of chunks written."""
        pending: list[tuple[DocumentInput, Chunk]] = []
        written = 0
        for document in documents:
            for chunk in chunk_document(document.parsed, self.chunking):
                pending.append((document, chunk))
            if len(pending) >= self.batch_chunks:
                written += self._flush(collection, tenant_id, pending)
                pending = []
                if progress:
                    progress(written)
        if pending:
            written += self._flush(collection, tenant_id, pending)
            if progress:
                progress(written)
        return written

    def _flush(
        self, collection: str, tenant_id: str, batch: list[tuple[DocumentInput, Chunk]]
    ) -> int:
        texts = [contextual_text(d.parsed.title, c) for d, c in batch]
        dense = self.embedder.embed_documents(texts)
        # Late-interaction vectors: the title (as its own sentence) and each sentence.
        sentence_lists = [
            [d.parsed.title, *split_sentences(c.text)]
            if d.parsed.title
            else split_sentences(c.text)
            for d, c in batch
        ]
        flat = [s for group in sentence_lists for s in group]
        sentence_vectors = self.embedder.embed_documents(flat)
        offsets = np.cumsum([0] + [len(g) for g in sentence_lists])
        chunks = [
            IndexedChunk(
                id=new_point_id(),
                tenant_id=tenant_id,
                document_id=document.document_id,
                document_title=document.parsed.title,
                text=chunk.text,
                position=chunk.position,
                heading=chunk.heading,
                page=chunk.page,
                dense=dense[i],
                sparse=self.sparse.encode_document(texts[i]),
                sentences=sentence_vectors[offsets[i] : offsets[i + 1]],
            )
            for i, (document, chunk) in enumerate(batch)
        ]
        self.store.upsert(collection, chunks)
        return len(chunks)
