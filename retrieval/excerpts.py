"""Sentences, and a retrieved chunk cut to what answers the query within a token budget.

A chunk is a few hundred words of a document; whoever is grounded by it (the coach's hint,
the check of the trainee's claims, the persona's own papers in its prompt) needs the one or
two sentences that match the question. Every token given to a prompt is prefilled on the
engine before the first token, so a turn's excerpts are cut to the sentences that share the
query's terms (the same analyzer as the sparse search) and to a token budget.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from retrieval.sparse import analyze

# A sentence ends at . ! or ? (closing quotes and brackets with it) before a space or the end;
# "1.5", "e.g." inside a sentence and "U.S." are not ends.
SENTENCE_END = re.compile(r"(?<!\b[A-Za-z]\.[A-Za-z])(?<!\be\.g)(?<!\bi\.e)[.!?]+[\"')\]]*(?=\s|$)")

# English text runs about four characters a token in the bundled models' BPE tokenizers;
# a budget is a bound on prefill, not an exact count, so the estimate needs no tokenizer.
CHARS_PER_TOKEN = 4


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of each sentence of ``text``; the last one may be unfinished."""
    spans: list[tuple[int, int]] = []
    start = 0
    for match in SENTENCE_END.finditer(text):
        end = match.end()
        if text[start:end].strip():
            spans.append((start, end))
        start = end
    if text[start:].strip():
        spans.append((start, len(text)))
    return [(s + len(text[s:e]) - len(text[s:e].lstrip()), e) for s, e in spans]


def sentences(text: str) -> list[str]:
    """The sentences of ``text``, whole, stripped."""
    return [text[s:e].strip() for s, e in sentence_spans(text)]


def estimated_tokens(text: str) -> int:
    return -(-len(text) // CHARS_PER_TOKEN)


@dataclass(frozen=True)
class ExcerptLimits:
    """How much of each chunk, and of all of them, a grounded agent is given."""

    sentences_per_chunk: int = 2
    token_budget: int = 160


def excerpt(text: str, query: str, max_sentences: int) -> str:
    """Up to ``max_sentences`` sentences of ``text`` that share the query's terms (see
    :func:`fit_excerpts`), in the document's order; the first one when none does."""
    return _excerpts([text], query, max_sentences)[0]


def fit_excerpts(texts: Sequence[str], query: str, limits: ExcerptLimits) -> list[str]:
    """Each text cut to its matching sentences, in rank order, while they fit the budget:
    the first one always (cut to the budget at a sentence when it alone is over it)."""
    kept: list[str] = []
    spent = 0
    for cut in _excerpts(texts, query, limits.sentences_per_chunk):
        cost = estimated_tokens(cut)
        if kept and spent + cost > limits.token_budget:
            break
        if not kept and cost > limits.token_budget:
            cut = _first_sentences_within(cut, limits.token_budget)
            cost = estimated_tokens(cut)
        kept.append(cut)
        spent += cost
    return kept


def _excerpts(texts: Sequence[str], query: str, max_sentences: int) -> list[str]:
    """Each text's sentences weighed by the query terms they share, a term weighing less the
    more sentences of all the texts hold it (the product's name, in every chunk, decides
    nothing); the first sentence of a text none of whose sentences shares a term (it was
    found by its meaning, and its opening says what it is)."""
    wanted = set(analyze(query))
    split = [sentences(" ".join(text.split())) for text in texts]
    shared = [[_shared(wanted, set(analyze(part))) for part in parts] for parts in split]
    holding = Counter(term for parts in shared for terms in parts for term in terms)
    out = []
    for parts, terms in zip(split, shared, strict=True):
        if len(parts) <= max_sentences:
            out.append(" ".join(parts))
            continue
        weight = [sum(1 / holding[t] for t in found) for found in terms]
        ranked = sorted((i for i in range(len(parts)) if weight[i]), key=lambda i: (-weight[i], i))
        out.append(" ".join(parts[i] for i in sorted(ranked[:max_sentences] or [0])))
    return out


def _shared(wanted: set[str], stems: set[str]) -> set[str]:
    """The query's stems a sentence holds; a stem counts when one is the start of the other
    and the shorter has four letters or more (Snowball leaves "certif" for certifications
    and "certifi" for certified)."""
    found = wanted & stems
    for term in wanted - found:
        if len(term) >= 4 and any(
            len(stem) >= 4 and (stem.startswith(term) or term.startswith(stem)) for stem in stems
        ):
            found.add(term)
    return found


def _first_sentences_within(text: str, token_budget: int) -> str:
    """The leading whole sentences of ``text`` within the budget (at least the first one)."""
    parts = sentences(text)
    out = parts[:1]
    for part in parts[1:]:
        if estimated_tokens(" ".join([*out, part])) > token_budget:
            break
        out.append(part)
    return " ".join(out)
