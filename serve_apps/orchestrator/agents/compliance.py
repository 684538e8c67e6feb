"""Compliance: the tenant's rules on every trainee turn, and on persona replies for tone.

``forbidden`` and ``disclosure`` rules are regular expressions and decide at once;
``semantic`` rules compare each sentence with the rule's example phrasings on the bundled
embedder (one embedding call per turn); ``knowledge_claims`` rules hold the figures the
trainee states against the seller's knowledge chunks retrieved for the turn; the tenant's
``judge`` rules go to the judge model together, in one question per turn. An excerpt is the
whole sentence (or sentences) that broke the rule.
"""

from __future__ import annotations

import logging
from typing import Literal

from pydantic import BaseModel, Field, create_model

from retrieval.excerpts import sentence_spans, sentences
from serve_apps.contracts.knowledge import RetrievedChunk
from serve_apps.contracts.specs import ComplianceRuleSpec
from serve_apps.contracts.wire import ComplianceFinding
from serve_apps.orchestrator.agents.claims import agrees, figures
from serve_apps.orchestrator.agents.judge import Judge
from serve_apps.orchestrator.agents.patterns import (
    Match,
    PatternTimeout,
    compile_pattern,
    search,
)
from serve_apps.orchestrator.semantic import SemanticMatcher

log = logging.getLogger("salesboost.compliance")

EXCERPT_CHARS = 400
Party = Literal["trainee", "npc"]
SEMANTIC_KINDS = {"semantic", "knowledge_claims"}


def whole_sentences(text: str, start: int | None = None, end: int | None = None) -> str:
    """The sentences of ``text`` that the span ``start:end`` touches, whole (the first
    sentence when there is no span)."""
    spans = sentence_spans(text) or [(0, len(text))]
    if start is None:
        chosen = spans[:1]
    else:
        stop = end if end is not None and end > start else start + 1
        chosen = [span for span in spans if span[0] < stop and span[1] > start] or spans[:1]
    return text[chosen[0][0] : chosen[-1][1]].strip()[:EXCERPT_CHARS]


def _excerpt(text: str, match: Match[str] | None) -> str:
    if match is None:
        return whole_sentences(text)
    return whole_sentences(text, match.start(), match.end())


class ComplianceChecker:
    def __init__(
        self,
        rules: list[ComplianceRuleSpec],
        judge: Judge | None = None,
        matcher: SemanticMatcher | None = None,
    ) -> None:
        self._rules = rules
        self._judge = judge
        self._matcher = matcher
        self._compiled = {
            rule.slug: (
                compile_pattern(rule.pattern) if rule.pattern else None,
                compile_pattern(rule.trigger) if rule.trigger else None,
            )
            for rule in rules
        }

    def _applicable(self, party: Party, kinds: set[str]) -> list[ComplianceRuleSpec]:
        return [r for r in self._rules if party in r.applies_to and r.kind in kinds]

    def check(
        self, text: str, *, party: Party, speaker: str, reply_to: int, strict: bool = False
    ) -> list[ComplianceFinding]:
        """The rules a regular expression decides, at once. A rule whose pattern gives up on
        ``text`` (:class:`PatternTimeout`) is skipped and logged, so one admin's pattern
        never stalls a conversation; ``strict`` raises it instead (trying a rule)."""
        findings = []
        for rule in self._applicable(party, {"forbidden", "disclosure"}):
            pattern, trigger = self._compiled[rule.slug]
            assert pattern is not None  # the spec requires one for these kinds
            try:
                if rule.kind == "forbidden":
                    match = search(pattern, text)
                    broken = match is not None
                else:
                    assert trigger is not None
                    match = search(trigger, text)
                    broken = match is not None and search(pattern, text) is None
            except PatternTimeout as exc:
                if strict:
                    raise
                log.warning("compliance rule %r skipped on turn %d: %s", rule.slug, reply_to, exc)
                continue
            if broken:
                findings.append(self._finding(rule, text, match, speaker, reply_to, "rule"))
        return findings

    @property
    def has_semantic_rules(self) -> bool:
        return self._matcher is not None and any(r.kind in SEMANTIC_KINDS for r in self._rules)

    @property
    def checks_claims(self) -> bool:
        """Whether a ``knowledge_claims`` rule checks the trainee against the seller's chunks."""
        return self._matcher is not None and bool(self._applicable("trainee", {"knowledge_claims"}))

    async def semantic_check(
        self,
        text: str,
        *,
        party: Party,
        speaker: str,
        reply_to: int,
        knowledge: list[RetrievedChunk] | None = None,
    ) -> list[ComplianceFinding]:
        """The ``semantic`` rules, and the ``knowledge_claims`` rules against ``knowledge``
        (the seller's chunks retrieved for this turn)."""
        if self._matcher is None:
            return []
        findings: list[ComplianceFinding] = []
        parts = sentences(text)
        semantic = self._applicable(party, {"semantic"})
        matches = await self._matcher.best_of_many([(parts, tuple(r.examples)) for r in semantic])
        for rule, match in zip(semantic, matches, strict=True):
            if match is not None and match.score >= rule.threshold:
                finding = self._finding(rule, text, None, speaker, reply_to, "semantic")
                findings.append(
                    finding.model_copy(
                        update={"excerpt": match.sentence, "similarity": round(match.score, 3)}
                    )
                )
        claims = self._applicable(party, {"knowledge_claims"})
        if claims and knowledge:
            contradiction = await self._contradicted_claim(parts, knowledge, claims[0].threshold)
            if contradiction is not None:
                sentence, chunk, known, similarity = contradiction
                for rule in claims:
                    finding = self._finding(rule, text, None, speaker, reply_to, "knowledge")
                    findings.append(
                        finding.model_copy(
                            update={
                                "excerpt": sentence,
                                "description": f"{rule.description} The knowledge base says: "
                                f'"{known}" ({chunk.title})',
                                "similarity": round(similarity, 3),
                                "source": chunk.citation(),
                            }
                        )
                    )
        return findings

    async def _contradicted_claim(
        self, parts: list[str], knowledge: list[RetrievedChunk], threshold: float
    ) -> tuple[str, RetrievedChunk, str, float] | None:
        """The first claim sentence whose figure the closest knowledge sentence (same unit,
        similar enough) does not bear out."""
        assert self._matcher is not None
        claimed = [(s, figures(s)) for s in parts]
        claimed = [(s, f) for s, f in claimed if f]
        if not claimed:
            return None
        known = [
            (sentence, chunk, figures(sentence))
            for chunk in knowledge
            for sentence in sentences(" ".join(chunk.text.split()))
        ]
        known = [k for k in known if k[2]]
        if not known:
            return None
        for sentence, claim_figures in claimed:
            units = {f.unit for f in claim_figures}
            candidates = [k for k in known if units & {f.unit for f in k[2]}]
            if not candidates:
                continue
            match = await self._matcher.best(sentence, tuple(k[0] for k in candidates))
            if match is None or match.score < threshold:
                continue
            known_sentence, chunk, known_figures = next(
                k for k in candidates if k[0] == match.example
            )
            if not all(agrees(f, known_figures) for f in claim_figures):
                return sentence, chunk, known_sentence, match.score
        return None

    @property
    def has_judge_rules(self) -> bool:
        return self._judge is not None and bool(self._applicable("trainee", {"judge"}))

    async def judge_check(
        self, text: str, *, speaker: str, reply_to: int
    ) -> list[ComplianceFinding]:
        """The trainee turn against the tenant's ``judge`` rules, in one question."""
        rules = self._applicable("trainee", {"judge"})
        if not rules or self._judge is None:
            return []
        slugs = tuple(rule.slug for rule in rules)
        verdict_type = create_model(
            "ComplianceVerdict",
            broken_rules=(list[Literal[slugs]], Field(default_factory=list, max_length=len(slugs))),
        )
        listing = "\n".join(f"- {rule.slug}: {rule.description}" for rule in rules)
        verdict: BaseModel = await self._judge.ask(
            "compliance",
            verdict_type,
            instructions=(
                "You check a salesperson's words against company rules. List the rules the "
                "words clearly break; an empty list when none is broken.\nRules:\n" + listing
            ),
            material=f"The salesperson said: {text}",
        )
        broken = set(verdict.broken_rules)  # type: ignore[attr-defined]
        return [
            self._finding(rule, text, None, speaker, reply_to, "judge")
            for rule in rules
            if rule.slug in broken
        ]

    @staticmethod
    def _finding(
        rule: ComplianceRuleSpec,
        text: str,
        match: Match[str] | None,
        speaker: str,
        reply_to: int,
        decided_by: Literal["rule", "semantic", "knowledge", "judge"],
    ) -> ComplianceFinding:
        return ComplianceFinding(
            reply_to=reply_to,
            speaker=speaker,
            rule=rule.slug,
            description=rule.description,
            severity=rule.severity,
            excerpt=_excerpt(text, match),
            decided_by=decided_by,
        )
