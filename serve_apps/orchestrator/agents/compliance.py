"""Compliance: the tenant's rules on every trainee turn, and on persona replies for tone.

``forbidden`` and ``disclosure`` rules are regular expressions and decide at once; the
tenant's ``judge`` rules go to the judge model together, in one question per turn.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, Field, create_model

from serve_apps.conversation.protocol import ComplianceFinding
from serve_apps.orchestrator.agents.judge import Judge
from serve_apps.orchestrator.specs import ComplianceRuleSpec

EXCERPT_CHARS = 160
Party = Literal["trainee", "npc"]


def _excerpt(text: str, match: re.Match[str] | None) -> str:
    if match is None:
        return text[:EXCERPT_CHARS]
    start = max(0, match.start() - 40)
    return text[start : start + EXCERPT_CHARS].strip()


class ComplianceChecker:
    def __init__(self, rules: list[ComplianceRuleSpec], judge: Judge | None = None) -> None:
        self._rules = rules
        self._judge = judge
        self._compiled = {
            rule.slug: (
                re.compile(rule.pattern) if rule.pattern else None,
                re.compile(rule.trigger) if rule.trigger else None,
            )
            for rule in rules
        }

    def _applicable(self, party: Party, kinds: set[str]) -> list[ComplianceRuleSpec]:
        return [r for r in self._rules if party in r.applies_to and r.kind in kinds]

    def check(
        self, text: str, *, party: Party, speaker: str, reply_to: int
    ) -> list[ComplianceFinding]:
        """The rules a regular expression decides, at once."""
        findings = []
        for rule in self._applicable(party, {"forbidden", "disclosure"}):
            pattern, trigger = self._compiled[rule.slug]
            assert pattern is not None  # the spec requires one for these kinds
            if rule.kind == "forbidden":
                match = pattern.search(text)
                broken = match is not None
            else:
                assert trigger is not None
                match = trigger.search(text)
                broken = match is not None and pattern.search(text) is None
            if broken:
                findings.append(self._finding(rule, text, match, speaker, reply_to, "rule"))
        return findings

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
        match: re.Match[str] | None,
        speaker: str,
        reply_to: int,
        decided_by: Literal["rule", "judge"],
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
