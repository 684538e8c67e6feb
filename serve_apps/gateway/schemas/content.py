"""Trying a compliance rule (the content itself is the specs of serve_apps.contracts.specs)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from serve_apps.contracts.specs import ComplianceRuleSpec, StorableText
from serve_apps.contracts.wire import ComplianceFinding


class RuleTryIn(StorableText):
    model_config = ConfigDict(extra="forbid")

    rule: ComplianceRuleSpec = Field(description="A rule as the editor has it (stored or not).")
    sentence: str = Field(
        ..., min_length=1, max_length=2000, description="What a trainee or a persona might say."
    )


class RuleTryOut(BaseModel):
    findings: list[ComplianceFinding] = Field(
        description="What the compliance agent would report; empty: the sentence keeps the rule."
    )
