"""A chunk cut to the sentences that answer the query, within a token budget."""

from __future__ import annotations

import pytest

from retrieval.excerpts import (
    ExcerptLimits,
    estimated_tokens,
    excerpt,
    fit_excerpts,
    sentences,
)

PRICING = (
    "CloudCRM has three editions. Starter costs 25 USD per seat per month. "
    "Professional costs 60 USD per seat per month and adds workflow automation. "
    "Enterprise is quoted per deal. A 30-day sandbox with sample data is free. "
    "The migration package is a fixed 48,000 USD."
)


def test_sentences_keep_decimals_and_abbreviations_inside():
    assert sentences("It is 1.5 ms, e.g. fast. Next one! Last") == [
        "It is 1.5 ms, e.g. fast.",
        "Next one!",
        "Last",
    ]


def test_an_excerpt_is_the_matching_sentences_in_the_documents_order():
    # "cost" is in two sentences, "migration" in one: the rarer term decides.
    cut = excerpt(PRICING, "What does migration cost?", max_sentences=1)
    assert cut == "The migration package is a fixed 48,000 USD."
    both = excerpt(PRICING, "a free sandbox, and Professional workflow automation", 2)
    assert both == (
        "Professional costs 60 USD per seat per month and adds workflow automation. "
        "A 30-day sandbox with sample data is free."
    )  # the document's order, not the query's
    # Only sentences that share a term: one here, though two were allowed.
    assert excerpt(PRICING, "Enterprise deals", 2) == "Enterprise is quoted per deal."


def test_without_a_shared_term_the_chunk_opens_the_excerpt():
    assert excerpt(PRICING, "hello there", max_sentences=1) == "CloudCRM has three editions."


def test_a_short_chunk_is_kept_whole():
    assert excerpt("One. Two.", "anything", max_sentences=3) == "One. Two."


def test_excerpts_fit_the_budget_best_first_and_the_first_always_comes():
    texts = [PRICING, "Support is 24/7 for Enterprise. " * 3, "Unrelated text. " * 10]
    limits = ExcerptLimits(sentences_per_chunk=2, token_budget=40)
    kept = fit_excerpts(texts, "migration cost", limits)
    assert kept and "48,000" in kept[0]
    assert sum(estimated_tokens(t) for t in kept) <= 40
    tiny = fit_excerpts(
        [PRICING], "migration", ExcerptLimits(sentences_per_chunk=5, token_budget=5)
    )
    assert len(tiny) == 1 and tiny[0] == sentences(tiny[0])[0]  # one whole sentence


@pytest.mark.parametrize("budget", [16, 60, 400])
def test_nothing_is_ever_cut_mid_sentence(budget: int):
    kept = fit_excerpts([PRICING, PRICING], "seat price", ExcerptLimits(2, budget))
    for text in kept:
        assert all(part.endswith((".", "!", "?")) for part in sentences(text))
