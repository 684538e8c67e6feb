"""Training content that is data, not code: rubrics, compliance rules, trainee memory.

Admins write these (the demo tenant's come from ``db/seed/demo_tenant.yaml``); they are
validated here once, stored as rows, and handed to the agents as these typed objects.
Deterministic checks (a regular expression, a count) go first wherever a rule can decide;
``semantic`` checks compare the trainee's sentences with example phrasings the admin wrote,
on the bundled sentence embedder (so "who else would be involved in choosing?" counts as
asking about the decision process); ``judge`` checks are questions the judge model answers
with structured output.
"""

from __future__ import annotations

import re
from typing import Any, Literal, get_args

import regex
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from retrieval.names import KB_SLUG_PATTERN

# The one definition of a slug (personas, scenarios, rubrics, rules, courses, companies).
SLUG_PATTERN = r"^[a-z0-9][a-z0-9-]{0,63}$"
Severity = Literal["info", "warning", "critical"]
# The stages of a sales conversation, in order: a scenario starts at one of them, and the coach
# follows the conversation through them.
SalesStage = Literal[
    "introduction",
    "qualification",
    "needs analysis",
    "value proposition",
    "solution presentation",
    "objection handling",
    "close",
]
SALES_STAGES: tuple[SalesStage, ...] = get_args(SalesStage)


def storable(value: Any) -> Any:
    """Refuse text PostgreSQL cannot store (NUL characters, lone surrogates), in lists too."""
    if isinstance(value, str):
        if "\x00" in value:
            raise ValueError("text must not contain NUL characters")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("text must be valid Unicode (no lone surrogates)") from None
    elif isinstance(value, list | tuple):
        for item in value:
            storable(item)
    return value


class StorableText(BaseModel):
    """A request body whose every text field can be stored as it is."""

    @field_validator("*", mode="after")
    @classmethod
    def _storable(cls, value: Any) -> Any:
        return storable(value)


class _Spec(StorableText):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _compiles(pattern: str | None) -> str | None:
    # Checked by the engine the agents search with (serve_apps/orchestrator/agents/patterns.py),
    # so a pattern saved is one a turn can compile.
    if pattern is not None:
        try:
            regex.compile(pattern)
        except regex.error as exc:
            raise ValueError(f"not a valid regular expression: {exc}") from None
    return pattern


Examples: Any = Field(
    default_factory=list,
    max_length=20,
    description="semantic: phrasings that count (each 3 to 300 characters).",
)
Threshold = Field(
    0.55,
    ge=0.2,
    le=0.95,
    description="semantic: the cosine similarity (all-MiniLM-L6-v2) a sentence must reach "
    "to the closest example.",
)


def _valid_examples(examples: list[str]) -> list[str]:
    for example in examples:
        if not 3 <= len(example.strip()) <= 300:
            raise ValueError("each example is 3 to 300 characters")
    return examples


class RubricCheck(_Spec):
    """One yes/no check. ``pattern``: yes when a trainee turn matches (the evidence is that
    turn's sentence); ``questions``: yes when the trainee asked at least ``min_count``
    questions; ``semantic``: yes when a trainee sentence is at least ``threshold`` similar to
    one of ``examples`` (the evidence is that sentence); ``judge``: the judge model answers
    ``question`` over the transcript."""

    question: str = Field(..., min_length=3, max_length=300)
    kind: Literal["pattern", "questions", "semantic", "judge"] = "judge"
    pattern: str | None = Field(None, max_length=500)
    min_count: int = Field(1, ge=1, le=50)
    examples: list[str] = Examples
    threshold: float = Threshold
    weight: float = Field(1.0, gt=0, le=100)

    @field_validator("pattern")
    @classmethod
    def _valid_pattern(cls, value: str | None) -> str | None:
        return _compiles(value)

    @field_validator("examples")
    @classmethod
    def _examples(cls, value: list[str]) -> list[str]:
        return _valid_examples(value)

    @model_validator(mode="after")
    def _fields_for_kind(self) -> RubricCheck:
        if self.kind == "pattern" and not self.pattern:
            raise ValueError("a pattern check needs a pattern")
        if self.kind == "semantic" and not self.examples:
            raise ValueError("a semantic check needs examples")
        return self


class RubricCriterion(_Spec):
    skill: str = Field(..., pattern=SLUG_PATTERN, description="The skill this criterion scores.")
    name: str = Field(..., min_length=1, max_length=120)
    weight: float = Field(1.0, gt=0, le=100)
    checks: list[RubricCheck] = Field(..., min_length=1, max_length=20)


class RubricSpec(_Spec):
    slug: str = Field(..., pattern=SLUG_PATTERN)
    name: str = Field(..., min_length=1, max_length=200)
    pass_score: float = Field(70, ge=0, le=100)
    criteria: list[RubricCriterion] = Field(..., min_length=1, max_length=20)

    @field_validator("criteria")
    @classmethod
    def _distinct_skills(cls, criteria: list[RubricCriterion]) -> list[RubricCriterion]:
        skills = [c.skill for c in criteria]
        if len(set(skills)) != len(skills):
            raise ValueError("each criterion scores a different skill")
        return criteria


ComplianceKind = Literal["forbidden", "disclosure", "semantic", "knowledge_claims", "judge"]


class ComplianceRuleSpec(_Spec):
    """A tenant's rule. ``forbidden``: ``pattern`` must not appear; ``disclosure``: when
    ``trigger`` appears, ``pattern`` (the disclosure) must appear in the same turn;
    ``semantic``: no sentence may be ``threshold`` similar to one of ``examples`` (what
    breaking it sounds like); ``knowledge_claims``: a figure the trainee states (a price, a
    percentage, a duration) must not contradict the seller's knowledge base, the chunk
    retrieved for the turn being the evidence; ``judge``: the judge model decides whether
    ``description`` is broken."""

    slug: str = Field(..., pattern=SLUG_PATTERN)
    description: str = Field(..., min_length=3, max_length=500)
    kind: ComplianceKind = "forbidden"
    applies_to: list[Literal["trainee", "npc"]] = Field(["trainee"], min_length=1)
    pattern: str | None = Field(None, max_length=500)
    trigger: str | None = Field(None, max_length=500)
    examples: list[str] = Examples
    threshold: float = Threshold
    severity: Severity = "warning"

    @field_validator("pattern", "trigger")
    @classmethod
    def _valid_patterns(cls, value: str | None) -> str | None:
        return _compiles(value)

    @field_validator("examples")
    @classmethod
    def _examples(cls, value: list[str]) -> list[str]:
        return _valid_examples(value)

    @model_validator(mode="after")
    def _fields_for_kind(self) -> ComplianceRuleSpec:
        if self.kind in {"forbidden", "disclosure"} and not self.pattern:
            raise ValueError(f"a {self.kind} rule needs a pattern")
        if self.kind == "disclosure" and not self.trigger:
            raise ValueError("a disclosure rule needs a trigger")
        if self.kind == "semantic" and not self.examples:
            raise ValueError("a semantic rule needs examples")
        return self


class TraineeMemory(_Spec):
    """What the coach is told about a trainee's earlier sessions."""

    summary: str = ""
    weak_skills: list[str] = Field(default_factory=list)


_Text: Any = Field(..., min_length=1, max_length=2000)
_Items: Any = Field(default_factory=list, max_length=20)


class PersonaSpec(_Spec):
    """A customer persona as an admin writes it."""

    slug: str = Field(..., pattern=SLUG_PATTERN)
    name: str = Field(..., min_length=1, max_length=200)
    role: str = Field(..., min_length=1, max_length=200)
    company: str = Field(..., min_length=1, max_length=200)
    personality: str = _Text
    goals: list[str] = _Items
    objections: list[str] = _Items
    facts: list[str] = _Items
    hidden: list[str] = _Items
    topics: list[str] = Field(default_factory=list, max_length=50)

    @field_validator("goals", "objections", "facts", "hidden", "topics")
    @classmethod
    def _short_items(cls, items: list[str]) -> list[str]:
        for item in items:
            if not item.strip() or len(item) > 500:
                raise ValueError("each item is 1 to 500 characters")
        return items


class ScenarioSpec(_Spec):
    """A practice situation: the product, the stage, who sits across the table."""

    slug: str = Field(..., pattern=SLUG_PATTERN)
    title: str = Field(..., min_length=1, max_length=200)
    product: str = _Text
    stage: SalesStage = "qualification"
    difficulty: Literal["easy", "medium", "hard"] = "medium"
    description: str = _Text
    knowledge_base: str | None = Field(
        None,
        pattern=KB_SLUG_PATTERN,
        description="The seller's knowledge base: grounds the coach and the claims check.",
    )
    customer_knowledge_base: str | None = Field(
        None,
        pattern=KB_SLUG_PATTERN,
        description="The customer's own papers (an RFP, notes on their current system, a "
        "competitor's quote): the persona reads them as its company's.",
    )
    vendor_website_knowledge_base: str | None = Field(
        None,
        pattern=KB_SLUG_PATTERN,
        description="The vendor's public material the customer has read: the persona reads "
        "it as what the vendor's website claims, never as its own offer.",
    )
    rubric: str | None = Field(None, pattern=SLUG_PATTERN, description="A rubric's slug.")
    personas: list[str] = Field(
        ..., min_length=1, max_length=5, description="Persona slugs; the first leads."
    )

    @field_validator("personas")
    @classmethod
    def _distinct(cls, slugs: list[str]) -> list[str]:
        if len(set(slugs)) != len(slugs):
            raise ValueError("a persona sits in a scenario once")
        if not all(re.match(SLUG_PATTERN, slug) for slug in slugs):
            raise ValueError("persona slugs are lowercase letters, digits and dashes")
        return slugs

    @model_validator(mode="after")
    def _the_customer_does_not_read_the_sellers_papers(self) -> ScenarioSpec:
        if self.knowledge_base and self.knowledge_base == self.customer_knowledge_base:
            raise ValueError(
                "customer_knowledge_base is the customer's own papers: the seller's knowledge "
                "base cannot be it (use vendor_website_knowledge_base for public material)"
            )
        return self
