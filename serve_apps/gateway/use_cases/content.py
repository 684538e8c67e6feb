"""Trying a compliance rule on a sentence, by the compliance agent's own checker."""

from __future__ import annotations

from serve_apps.gateway.errors import APIError
from serve_apps.gateway.schemas.content import RuleTryIn, RuleTryOut
from serve_apps.orchestrator.agents.compliance import ComplianceChecker
from serve_apps.orchestrator.agents.patterns import PatternTimeout
from serve_apps.orchestrator.semantic import SemanticMatcher

# What a sentence alone decides: judge rules need the judge model and knowledge_claims rules
# the knowledge retrieved for a turn, both in a session.
TRYABLE_KINDS = ("forbidden", "disclosure", "semantic")


async def try_rule(matcher: SemanticMatcher | None, body: RuleTryIn) -> RuleTryOut:
    """The findings the compliance agent gives a sentence under a rule (stored or not), as
    said by the rule's first party; ``matcher`` (the session's embedder) decides semantic
    rules. Nothing is stored."""
    rule = body.rule
    if rule.kind not in TRYABLE_KINDS:
        raise APIError(
            422,
            "rule_not_tryable",
            f"a {rule.kind} rule is decided in a session (judge: by the judge model; "
            "knowledge_claims: against the knowledge found for the turn); a sentence can "
            f"be tried on {', '.join(TRYABLE_KINDS)} rules",
        )
    party = rule.applies_to[0]
    if rule.kind != "semantic":
        try:
            findings = ComplianceChecker([rule]).check(
                body.sentence, party=party, speaker=party, reply_to=0, strict=True
            )
        except PatternTimeout as exc:  # in a session the rule would be skipped on this turn
            raise APIError(422, "pattern_too_slow", str(exc)) from None
        return RuleTryOut(findings=findings)
    unavailable = "the sentence embedder is unavailable just now; try again in a moment"
    if matcher is None:
        raise APIError(503, "embedder_unavailable", unavailable, detail="no embedder handle")
    checker = ComplianceChecker([rule], matcher=matcher)
    try:
        findings = await checker.semantic_check(
            body.sentence, party=party, speaker=party, reply_to=0
        )
    except Exception as exc:
        raise APIError(
            503, "embedder_unavailable", unavailable, detail=f"embedder failed: {exc!r}"[:300]
        ) from None
    return RuleTryOut(findings=findings)
