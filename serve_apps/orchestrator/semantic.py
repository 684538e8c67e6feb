"""Semantic similarity for the agents' checks, on the bundled sentence embedder.

A ``semantic`` rubric check or compliance rule holds a few example phrasings the admin
wrote ("who else would be involved in choosing?") and a threshold: a trainee sentence
matches when its cosine similarity to the closest example reaches the threshold. The
sentences and the examples are embedded by the same Embedder deployment the knowledge
service uses (all-MiniLM-L6-v2 on CPU, normalized vectors), reached by its handle; tests and
the quality bench use the same model in-process (:class:`LocalSentenceEmbedder`).
"""

from __future__ import annotations

import asyncio
import re
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from retrieval.excerpts import sentences

EXAMPLE_CACHE_SIZE = 256
# A sentence that asks two things ("who else would be involved, and what's your budget?")
# is compared as a whole and clause by clause: the second question dilutes the first.
_CLAUSE = re.compile(
    r",\s*(?:and|but|or|plus)\s+|;\s*|\s+and\s+(?=(?:what|who|how|when|why|which)\b)", re.I
)


def clauses(sentence: str) -> list[str]:
    parts = [p.strip(" ,;") for p in _CLAUSE.split(sentence)]
    parts = [p for p in parts if len(p.split()) >= 3]
    return [sentence] + (parts if len(parts) > 1 else [])


class SentenceEmbedder(Protocol):
    async def embed(self, texts: list[str]) -> np.ndarray:
        """One normalized row per text."""
        ...


class ServeSentenceEmbedder:
    """The Embedder deployment (``serve_apps.knowledge.embedder.EmbedderDeployment``)."""

    def __init__(self, handle: Any, *, timeout_s: float = 5.0) -> None:
        self._handle = handle
        self._timeout_s = timeout_s

    async def embed(self, texts: list[str]) -> np.ndarray:
        return np.asarray(
            await asyncio.wait_for(self._handle.embed_documents.remote(texts), self._timeout_s)
        )


class LocalSentenceEmbedder:
    """The same model in this process (``retrieval.embedder.Embedder``): tests and benches."""

    def __init__(self, model: str = "all-MiniLM-L6-v2") -> None:
        from retrieval.embedder import Embedder

        self._embedder = Embedder(model=model)
        self._embedder.warm_up()

    async def embed(self, texts: list[str]) -> np.ndarray:
        return np.asarray(await asyncio.to_thread(self._embedder.embed_documents, texts))


@dataclass(frozen=True)
class SemanticMatch:
    score: float  # cosine similarity of the best sentence to its closest example
    sentence: str  # that sentence, whole
    example: str


class SemanticMatcher:
    """Best sentence-to-example similarity; examples' vectors are kept (admins reuse them)."""

    def __init__(self, embedder: SentenceEmbedder) -> None:
        self._embedder = embedder
        self._examples: OrderedDict[tuple[str, ...], np.ndarray] = OrderedDict()

    async def _example_vectors(self, examples: tuple[str, ...]) -> np.ndarray:
        vectors = self._examples.get(examples)
        if vectors is None:
            vectors = await self._embedder.embed(list(examples))
            self._examples[examples] = vectors
            if len(self._examples) > EXAMPLE_CACHE_SIZE:
                self._examples.popitem(last=False)
        else:
            self._examples.move_to_end(examples)
        return vectors

    async def best(self, text: str, examples: list[str] | tuple[str, ...]) -> SemanticMatch | None:
        """The sentence of ``text`` closest to any of ``examples``; None for empty input."""
        parts = sentences(text)
        if not parts or not examples:
            return None
        return (await self.best_of_many([(parts, tuple(examples))]))[0]

    async def best_of_many(
        self, queries: list[tuple[list[str], tuple[str, ...]]]
    ) -> list[SemanticMatch | None]:
        """:meth:`best` for several (sentences, examples) pairs, the sentences embedded in one
        call (one trainee turn against every semantic rule)."""
        pieces = [[(c, s) for s in parts for c in clauses(s)] for parts, _ in queries]
        unique = list(dict.fromkeys(c for piece in pieces for c, _ in piece))
        if not unique:
            return [None for _ in queries]
        vectors = await self._embedder.embed(unique)
        row = {s: vectors[i] for i, s in enumerate(unique)}
        results: list[SemanticMatch | None] = []
        for piece, (_, examples) in zip(pieces, queries, strict=True):
            if not piece or not examples:
                results.append(None)
                continue
            example_vectors = await self._example_vectors(examples)
            sims = np.stack([row[c] for c, _ in piece]) @ example_vectors.T
            i, j = np.unravel_index(int(np.argmax(sims)), sims.shape)
            # The evidence is the whole sentence the closest clause is in.
            results.append(SemanticMatch(float(sims[i, j]), piece[i][1], examples[j]))
        return results

    async def similarity(self, a: str, b: str) -> float:
        vectors = await self._embedder.embed([a, b])
        return float(vectors[0] @ vectors[1])
