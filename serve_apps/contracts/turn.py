"""What the gateway sends the orchestrator and what comes back, over Serve handles."""

from __future__ import annotations

import hashlib
from typing import Literal

from pydantic import BaseModel, Field

from serve_apps.contracts.knowledge import RetrievedChunk
from serve_apps.contracts.models import ModelRoute
from serve_apps.contracts.specs import ComplianceRuleSpec, RubricSpec, TraineeMemory


class PersonaCard(BaseModel):
    """Everything the NPC model needs to play one customer."""

    slug: str
    name: str
    role: str
    company: str
    personality: str
    goals: list[str] = Field(default_factory=list)
    objections: list[str] = Field(default_factory=list)
    facts: list[str] = Field(default_factory=list)
    hidden: list[str] = Field(default_factory=list)
    topics: list[str] = Field(
        default_factory=list, description="Words that make this persona answer (the director)."
    )

    def fingerprint(self) -> str:
        """A short hash of the card, to tell in a trace which card a prompt was built from
        (the card itself is content, never put in a span)."""
        return hashlib.sha256(self.model_dump_json().encode()).hexdigest()[:16]


class ScenarioCard(BaseModel):
    title: str
    product: str
    stage: str
    difficulty: str
    description: str


class HistoryTurn(BaseModel):
    speaker: Literal["trainee", "npc"]
    text: str
    persona: str | None = Field(None, description="Which persona said an NPC turn (its slug).")


class TranscriptTurn(BaseModel):
    """A stored turn as the evaluator reads it."""

    seq: int
    speaker: str = Field(..., description="'trainee' or the persona's slug.")
    text: str


# Which agents work around the conversation: ``practice``, every agent, hints included;
# ``assessment``, no hints (compliance, review and the score still run); ``conversation``, the
# persona alone (no agents, no score). The one list of modes: the database's enum is built
# from it (``db.models.SessionMode``).
SessionModeName = Literal["practice", "assessment", "conversation"]


class PersonaPapers(BaseModel):
    """What the persona has read for this turn, never the seller's knowledge base: its own
    company's papers (the scenario's buyer-side knowledge base: an RFP, notes on the current
    system, a competitor's quote) and, where the scenario says the customer has read it, the
    vendor's public website, framed as the vendor's claims."""

    own: list[RetrievedChunk] = Field(default_factory=list)
    vendor_website: list[RetrievedChunk] = Field(default_factory=list)

    def chunks(self) -> list[RetrievedChunk]:
        return [*self.own, *self.vendor_website]


class TurnRequest(BaseModel):
    session_id: str
    tenant_id: str
    knowledge_base: str | None = Field(
        None,
        description="The seller's knowledge base of the scenario, if any: it grounds the "
        "coach and the check of the trainee's claims, not the persona.",
    )
    reply_to_seq: int
    persona: PersonaCard = Field(..., description="The lead persona (the first of the scenario).")
    committee: list[PersonaCard] = Field(
        default_factory=list,
        description="Every persona of a buying committee, lead included; empty: only the lead.",
    )
    scenario: ScenarioCard
    history: list[HistoryTurn] = Field(
        default_factory=list, description="Earlier turns, oldest first, without the new one."
    )
    trainee_text: str
    grounding: list[RetrievedChunk] | None = Field(
        None,
        description="The seller's knowledge chunks for the coach and the claims check. None: "
        "the orchestrator asks for them itself, after the persona's first token and only when "
        "the turn needs them; a list (the benchmarks' fixed grounding) is used as it is.",
    )
    persona_papers: PersonaPapers = Field(
        default_factory=PersonaPapers,
        description="The persona's own papers for this turn, retrieved by the gateway while it "
        "stores the turn: they are in the persona's prompt.",
    )
    max_tokens: int = Field(64, ge=1, le=2048)
    temperature: float = Field(0.7, ge=0, le=2)
    mode: SessionModeName = Field(
        "conversation",
        description="practice: every agent; assessment: no hints; conversation: the persona alone.",
    )
    compliance_rules: list[ComplianceRuleSpec] = Field(default_factory=list)
    npc_model: ModelRoute | None = Field(
        None, description="The persona's model version for this turn (None: the configured one)."
    )
    judge_model: ModelRoute | None = Field(
        None, description="The judge's model version (None: the configured one)."
    )
    memory: TraineeMemory | None = Field(
        None, description="What this trainee struggled with in earlier sessions (the coach)."
    )

    @property
    def personas(self) -> list[PersonaCard]:
        return self.committee or [self.persona]


class NPCChunk(BaseModel):
    """A piece of the streamed reply; the last one has ``done`` and the token count."""

    text: str = ""
    done: bool = False
    speaker: str | None = Field(None, description="The persona speaking (its slug).")
    attempt: int = Field(0, description="Regeneration number; a review may retract an attempt.")
    final_text: str | None = Field(
        None, description="On the last chunk: the reply that counts (after review)."
    )
    output_tokens: int | None = None
    model: str | None = None
    citations: list[RetrievedChunk] = Field(default_factory=list)
    finish_reason: str | None = Field(
        None, description="On the last chunk: why the engine stopped ('length': the budget)."
    )
    trimmed: bool = Field(
        False, description="On the last chunk: an unfinished last sentence was cut off."
    )


# --- the evaluator's report -------------------------------------------------------------


class Evidence(BaseModel):
    seq: int = Field(..., description="The turn the evidence comes from.")
    quote: str


class CheckResult(BaseModel):
    question: str
    passed: bool
    weight: float
    decided_by: Literal["rule", "semantic", "judge", "judge_failed", "not_checked"] = Field(
        ...,
        description="not_checked: a judge check with no judge to answer it (the CPU default); "
        "it counts neither way.",
    )
    evidence: list[Evidence] = Field(default_factory=list)
    similarity: float | None = Field(None, description="semantic: the best sentence's.")


class CriterionResult(BaseModel):
    skill: str
    name: str
    weight: float
    score: float = Field(..., ge=0, le=100)
    checks: list[CheckResult]
    scored: bool = Field(True, description="False: none of its checks could be decided.")


class EvaluationReport(BaseModel):
    rubric: str
    score: float = Field(..., ge=0, le=100)
    pass_score: float
    passed: bool
    criteria: list[CriterionResult]
    strengths: list[str]
    improvements: list[str]
    summary: str

    def skill_scores(self) -> dict[str, float]:
        return {c.skill: c.score for c in self.criteria}


class EvaluationRequest(BaseModel):
    session_id: str
    scenario: ScenarioCard
    personas: list[PersonaCard]
    transcript: list[TranscriptTurn]
    rubric: RubricSpec
    judge_model: ModelRoute | None = Field(
        None, description="The judge's model version (None: the configured one)."
    )
