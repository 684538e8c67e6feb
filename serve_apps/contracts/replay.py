"""What a replay of stored sessions is given: the sessions as the caller read them, under
row-level security as its own company (``salesboost models replay``; the model lifecycle
runs them against a candidate, and reads no table itself)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from serve_apps.contracts.specs import ComplianceRuleSpec, RubricSpec
from serve_apps.contracts.turn import PersonaCard, ScenarioCard, SessionModeName

# A replay holds the persona's lock and an engine's time: a few dozen sessions is a sample.
MAX_REPLAY_SESSIONS = 50
# A longer session is replayed up to this many trainee turns (both sides over the same ones).
MAX_REPLAY_TURNS = 20


class StoredExchange(BaseModel):
    """A trainee turn and the persona's reply stored for it (None: it was not answered)."""

    seq: int = Field(description="The trainee turn's sequence number.")
    trainee_text: str
    reply: str | None = None
    speaker: str | None = Field(None, description="The persona that replied (its slug).")
    model: str | None = Field(None, description="The version that produced the reply.")
    first_token_ms: float | None = Field(
        None, description="What the trainee waited for the first token (since it was kept)."
    )
    output_tokens: int | None = Field(None, description="Over every attempt of the reply.")
    reviews: int = Field(0, description="The reviewer's verdicts on the reply's attempts.")
    rejections: int = Field(0, description="Of which not passed (retried or replaced).")


class StoredSession(BaseModel):
    """One stored session with the training content its turns are replayed with: the
    scenario, its personas and the company's rules as they are now (a live conversation
    reads them again for every turn too)."""

    session_id: str
    tenant_id: str
    mode: SessionModeName
    started_at: datetime
    ended: bool
    assigned_model: str | None = Field(None, description="The version it was given.")
    persona: PersonaCard = Field(description="The lead persona.")
    committee: list[PersonaCard] = Field(default_factory=list)
    scenario: ScenarioCard
    compliance_rules: list[ComplianceRuleSpec] = Field(default_factory=list)
    knowledge_base: str | None = None
    customer_knowledge_base: str | None = None
    vendor_website_knowledge_base: str | None = None
    rubric: RubricSpec | None = Field(None, description="None: the session is not scored.")
    recorded_score: float | None = Field(
        None, description="The evaluator's score stored when the session ended, if it was."
    )
    exchanges: list[StoredExchange] = Field(max_length=MAX_REPLAY_TURNS)
    truncated: bool = Field(
        False, description=f"It had more trainee turns than the {MAX_REPLAY_TURNS} replayed."
    )


class ReplayTurnSettings(BaseModel):
    """How the gateway answers a turn, so that the candidate answers the replayed ones alike."""

    max_tokens: int = Field(64, ge=1, le=2048)
    temperature: float = Field(0.3, ge=0, le=2)
    grounding_top_k: int = Field(3, ge=0, le=20)
    grounding_token_budget: int = Field(120, ge=16, le=2000)
    grounding_timeout_s: float = Field(2.0, gt=0, le=30)
