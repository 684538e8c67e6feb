"""BM25-style sparse vectors for Qdrant: term-frequency saturation here, IDF in Qdrant.

Documents get ``tf·(k1+1) / (tf + k1·(1−b+b·len/avg_len))`` per stemmed term; queries get
1 per term. A collection whose sparse vector has ``Modifier.IDF`` then scores exactly BM25.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache

_TOKEN = re.compile(r"[a-z0-9]+(?:[-'][a-z0-9]+)*")

# A short English stop list: words that carry no topic and would only add posting-list work.
STOPWORDS = frozenset(
    [
        "a",
        "about",
        "above",
        "after",
        "again",
        "against",
        "all",
        "am",
        "an",
        "and",
        "any",
        "are",
        "as",
        "at",
        "be",
        "because",
        "been",
        "before",
        "being",
        "below",
        "between",
        "both",
        "but",
        "by",
        "can",
        "could",
        "did",
        "do",
        "does",
        "doing",
        "down",
        "during",
        "each",
        "few",
        "for",
        "from",
        "further",
        "had",
        "has",
        "have",
        "having",
        "he",
        "her",
        "here",
        "hers",
        "herself",
        "him",
        "himself",
        "his",
        "how",
        "i",
        "if",
        "in",
        "into",
        "is",
        "it",
        "its",
        "itself",
        "just",
        "me",
        "more",
        "most",
        "my",
        "myself",
        "no",
        "nor",
        "not",
        "now",
        "of",
        "off",
        "on",
        "once",
        "only",
        "or",
        "other",
        "our",
        "ours",
        "ourselves",
        "out",
        "over",
        "own",
        "same",
        "she",
        "should",
        "so",
        "some",
        "such",
        "than",
        "that",
        "the",
        "their",
        "theirs",
        "them",
        "themselves",
        "then",
        "there",
        "these",
        "they",
        "this",
        "those",
        "through",
        "to",
        "too",
        "under",
        "until",
        "up",
        "very",
        "was",
        "we",
        "were",
        "what",
        "when",
        "where",
        "which",
        "while",
        "who",
        "whom",
        "why",
        "will",
        "with",
        "would",
        "you",
        "your",
        "yours",
        "yourself",
        "yourselves",
    ]
)


@dataclass(frozen=True)
class SparseVector:
    indices: list[int]
    values: list[float]


@lru_cache(maxsize=1)
def _stemmer():
    import snowballstemmer

    return snowballstemmer.stemmer("english")


def analyze(text: str) -> list[str]:
    """Lower-case word tokens, stop words removed, Snowball-stemmed."""
    words = [w for w in _TOKEN.findall(text.lower()) if w not in STOPWORDS and len(w) < 40]
    return _stemmer().stemWords(words)


def term_id(term: str) -> int:
    import mmh3

    return mmh3.hash(term, signed=False)


class BM25Encoder:
    def __init__(self, *, k1: float = 1.2, b: float = 0.75, avg_doc_terms: float = 120.0) -> None:
        if k1 <= 0 or not 0 <= b <= 1 or avg_doc_terms <= 0:
            raise ValueError(f"invalid BM25 parameters k1={k1} b={b} avg={avg_doc_terms}")
        self.k1, self.b, self.avg_doc_terms = k1, b, avg_doc_terms

    def encode_document(self, text: str) -> SparseVector:
        terms = analyze(text)
        counts = Counter(term_id(t) for t in terms)
        norm = self.k1 * (1 - self.b + self.b * len(terms) / self.avg_doc_terms)
        indices = sorted(counts)
        values = [counts[i] * (self.k1 + 1) / (counts[i] + norm) for i in indices]
        return SparseVector(indices, values)

    def encode_query(self, text: str) -> SparseVector:
        indices = sorted({term_id(t) for t in analyze(text)})
        return SparseVector(indices, [1.0] * len(indices))
