"""Trying a compliance rule on a sentence (unit: the use case, without FastAPI, with a words
embedder; the real one, on the stack, in tests/integration/test_admin_api.py), and the audit
log's time filters."""

from __future__ import annotations

import functools
from datetime import UTC, datetime

import numpy as np
import pytest
from pydantic import TypeAdapter, ValidationError

from serve_apps.gateway.errors import APIError
from serve_apps.gateway.schemas.admin import StorableTime
from serve_apps.gateway.schemas.content import RuleTryIn
from serve_apps.gateway.use_cases.content import try_rule
from serve_apps.orchestrator.semantic import SemanticMatcher


class WordsEmbedder:
    """Normalized bags of words: sentences sharing words are similar."""

    def __init__(self, failure: Exception | None = None) -> None:
        self.failure = failure

    async def embed(self, texts: list[str]) -> np.ndarray:
        if self.failure is not None:
            raise self.failure
        rows = np.zeros((len(texts), 64))
        for i, text in enumerate(texts):
            for word in text.lower().strip("?.!").split():
                rows[i, sum(map(ord, word)) % 64] += 1
        return rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-9)


def _try(matcher: SemanticMatcher | None = None):
    return functools.partial(try_rule, matcher)


def _body(sentence: str, **rule) -> RuleTryIn:
    return RuleTryIn.model_validate(
        {"rule": {"slug": "r", "description": "No promises.", **rule}, "sentence": sentence}
    )


async def test_a_regular_expression_rule_gives_the_agents_finding_with_the_whole_sentence():
    out = await _try()(
        _body("Hi there. We guarantee a 50% saving, always.", pattern=r"(?i)guarantee")
    )
    (finding,) = out.findings
    assert finding.rule == "r" and finding.speaker == "trainee" and finding.decided_by == "rule"
    assert finding.excerpt == "We guarantee a 50% saving, always."
    kept = await _try()(_body("We expect savings.", pattern=r"(?i)guarantee"))
    assert kept.findings == []
    disclosure = {"kind": "disclosure", "trigger": "(?i)price", "pattern": "(?i)excl"}
    assert (await _try()(_body("The price is 10.", **disclosure))).findings
    assert not (await _try()(_body("The price is 10, excl. VAT.", **disclosure))).findings


async def test_a_semantic_rule_is_tried_on_the_embedder_and_says_how_close():
    rule = {"kind": "semantic", "examples": ["can I get a discount"], "threshold": 0.5}
    out = await _try(SemanticMatcher(WordsEmbedder()))(
        _body("Hello. Can I get a discount today?", applies_to=["npc"], **rule)
    )
    (finding,) = out.findings
    assert finding.speaker == "npc" and finding.decided_by == "semantic"
    assert finding.excerpt == "Can I get a discount today?" and finding.similarity >= 0.5

    for matcher in (None, SemanticMatcher(WordsEmbedder(TimeoutError()))):
        with pytest.raises(APIError) as refused:
            await _try(matcher)(_body("Any discount?", **rule))
        assert refused.value.status == 503 and refused.value.code == "embedder_unavailable"


@pytest.mark.parametrize("kind", ["judge", "knowledge_claims"])
async def test_rules_a_sentence_alone_cannot_decide_are_refused_with_the_reason(kind):
    with pytest.raises(APIError) as refused:
        await _try()(_body("We guarantee it.", kind=kind))
    assert refused.value.status == 422 and refused.value.code == "rule_not_tryable"
    assert kind in refused.value.message


def test_the_sentence_is_bounded_and_the_rule_validated_as_the_editor_does():
    with pytest.raises(ValidationError, match="sentence"):
        _body("x" * 2001, pattern="x")
    with pytest.raises(ValidationError, match="regular expression"):
        _body("x", pattern="(unclosed")
    with pytest.raises(ValidationError, match="needs examples"):
        _body("x", kind="semantic")


def test_audit_times_are_storable_and_zoned():
    times = TypeAdapter(StorableTime)
    assert times.validate_python("2026-12-01T10:00:00") == datetime(2026, 12, 1, 10, tzinfo=UTC)
    for out_of_range in ("0001-01-01T00:00:00Z", "9999-12-31T23:00:00-14:00"):
        with pytest.raises(ValidationError, match="1970 to 9998"):
            times.validate_python(out_of_range)
