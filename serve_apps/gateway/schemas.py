"""Request and response bodies of the gateway's HTTP routes."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from retrieval.chunking import ChunkingConfig
from serve_apps.contracts.knowledge import ExplainedChunk, RetrievedChunk
from serve_apps.contracts.specs import SLUG_PATTERN, ComplianceRuleSpec, StorableText
from serve_apps.contracts.turn import EvaluationReport
from serve_apps.contracts.wire import ComplianceFinding


class CreateSessionRequest(StorableText):
    model_config = ConfigDict(extra="forbid")

    scenario: str = Field(
        ...,
        min_length=1,
        max_length=64,
        description="Scenario id or slug.",
        examples=["crm-discovery-call"],
    )
    mode: Literal["practice", "assessment", "conversation"] = Field(
        "practice",
        description="practice: every agent, hints included; assessment: no hints (compliance, "
        "review and the score still run); conversation: the persona alone. A course sets it.",
    )
    course: str | None = Field(
        None,
        pattern=SLUG_PATTERN,
        description="Start the session as part of this course (published, assigned to you).",
    )


class PersonaOut(BaseModel):
    slug: str
    name: str
    role: str
    company: str


class ScenarioOut(BaseModel):
    id: uuid.UUID
    slug: str
    title: str
    stage: str
    difficulty: str
    description: str
    personas: list[PersonaOut]


class TurnOut(BaseModel):
    seq: int
    speaker: str
    text: str
    client_turn_id: str | None
    reply_to: int | None
    citations: list[RetrievedChunk] = Field(
        default_factory=list, description="Knowledge chunks an NPC reply was grounded on."
    )


class SessionOut(BaseModel):
    id: uuid.UUID
    status: str
    mode: str = "practice"
    created_at: datetime
    scenario: ScenarioOut
    stream_url: str = Field(description="WebSocket path that carries the conversation.")
    turns: list[TurnOut] = Field(default_factory=list)


class HealthOut(BaseModel):
    status: str
    checks: dict[str, str] = Field(default_factory=dict)
    # Each model engine: its model, the dtype it computes in, why, and the CPU (readiness only).
    engines: list[dict[str, str]] = Field(default_factory=list)


class KnowledgeBaseSettings(StorableText):
    model_config = ConfigDict(extra="forbid")

    chunking: ChunkingConfig = Field(default_factory=ChunkingConfig)


class DocumentOut(BaseModel):
    id: uuid.UUID
    filename: str
    title: str
    size_bytes: int
    chunks: int
    created_at: datetime


class KnowledgeBaseOut(BaseModel):
    slug: str
    chunking: ChunkingConfig
    live_version: int | None = Field(description="The version searches use (None: empty).")
    versions: list[int] = Field(description="Every version kept; any can be made live again.")
    documents: list[DocumentOut]


class SearchTestOut(BaseModel):
    query: str
    hits: list[ExplainedChunk] = Field(
        description="Ranked as returned; each with its score and rank at every stage."
    )


class LoginRequest(StorableText):
    model_config = ConfigDict(extra="forbid")

    tenant: str = Field(..., min_length=1, max_length=64, description="Company slug.")
    email: str = Field(..., min_length=3, max_length=320, pattern=r"^[^@\s]+@[^@\s]+$")
    password: str = Field(..., min_length=1, max_length=1024)


class RefreshRequest(StorableText):
    model_config = ConfigDict(extra="forbid")

    refresh_token: str = Field(..., min_length=1, max_length=512)


class TokenPairOut(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_in: int = Field(description="Seconds the access token is valid.")
    refresh_token: str
    refresh_expires_in: int


class WebSocketTicketOut(BaseModel):
    ticket: str = Field(description="Put it in the WebSocket URL as ?ticket=...; one use.")
    expires_in: int


class MeOut(BaseModel):
    user_id: uuid.UUID
    tenant_id: uuid.UUID
    email: str
    display_name: str
    role: str


class AuditEventOut(BaseModel):
    id: int
    actor_user_id: uuid.UUID | None
    action: str
    target: str
    details: dict
    request_id: str | None
    created_at: datetime


def _storable_time(value: datetime) -> datetime:
    # As UTC, a year outside this range cannot be read back into a Python datetime; a time
    # without a zone is UTC.
    if not 1970 <= value.year <= 9998:
        raise ValueError("a date from 1970 to 9998")
    return value if value.tzinfo else value.replace(tzinfo=UTC)


StorableTime = Annotated[datetime, AfterValidator(_storable_time)]
AUDIT_ACTION = r"^[a-z_.]{1,64}$"


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


class AgentEventOut(BaseModel):
    reply_to: int | None = Field(description="The trainee turn the event is about.")
    agent: str
    kind: str
    payload: dict[str, Any]
    created_at: datetime


class SessionReportOut(BaseModel):
    session_id: uuid.UUID
    status: str
    evaluation: EvaluationReport | None = Field(
        None, description="The evaluator's report; None until the session is ended and scored."
    )
    events: list[AgentEventOut] = Field(
        default_factory=list, description="What the agents said and how they failed, in order."
    )


# --- people ---------------------------------------------------------------------------------

Email = Annotated[str, Field(min_length=3, max_length=320, pattern=r"^[^@\s,]+@[^@\s,]+$")]
RoleName = Literal["admin", "manager", "trainee"]
TeamName = Annotated[str, Field(min_length=1, max_length=120, pattern=r"^[^\x00-\x1f]+$")]


class UserOut(BaseModel):
    id: uuid.UUID
    email: str
    display_name: str
    role: str
    active: bool
    invited: bool = Field(description="True until the user has set a password.")
    teams: list[str] = Field(default_factory=list)


class InviteRequest(StorableText):
    model_config = ConfigDict(extra="forbid")

    email: Email
    display_name: str = Field(..., min_length=1, max_length=200)
    role: RoleName = "trainee"
    teams: list[TeamName] = Field(default_factory=list, max_length=20)


class InvitationOut(BaseModel):
    user: UserOut
    invitation_token: str = Field(
        description="Give it to the person; POST /v1/auth/accept-invite sets their password."
    )
    expires_at: datetime


class ImportRowOut(BaseModel):
    row: int = Field(description="The CSV line number (1 is the header).")
    email: str | None
    status: Literal["created", "exists", "invalid"]
    error: str | None = None
    invitation_token: str | None = None


class ImportReportOut(BaseModel):
    created: int
    exists: int
    invalid: int
    rows: list[ImportRowOut]


class UserPatch(StorableText):
    model_config = ConfigDict(extra="forbid")

    display_name: str | None = Field(None, min_length=1, max_length=200)
    role: RoleName | None = None
    active: bool | None = None


class AcceptInviteRequest(StorableText):
    model_config = ConfigDict(extra="forbid")

    invitation_token: str = Field(..., min_length=1, max_length=512)
    password: str = Field(..., min_length=12, max_length=1024)


class TeamIn(StorableText):
    model_config = ConfigDict(extra="forbid")

    name: TeamName


class TeamOut(BaseModel):
    id: uuid.UUID
    name: str
    members: list[uuid.UUID]


class TeamMembersIn(StorableText):
    model_config = ConfigDict(extra="forbid")

    user_ids: list[uuid.UUID] = Field(..., max_length=1000)


# --- analytics -------------------------------------------------------------------------------


class OverviewOut(BaseModel):
    sessions: int = Field(description="Training sessions started.")
    ended: int
    completion_rate: float | None = Field(description="ended ÷ sessions (None: no sessions).")
    scored: int
    passed: int
    pass_rate: float | None = Field(description="passed ÷ scored (None: nothing scored).")
    average_score: float | None


class SkillPoint(BaseModel):
    session_id: uuid.UUID
    at: datetime
    score: float


class SkillSeries(BaseModel):
    skill: str
    points: list[SkillPoint] = Field(description="Oldest first: one line of a trend chart.")
    first: float = Field(description="The first attempt's score.")
    best: float
    improvement: float = Field(description="best - first.")


class SkillTrendOut(BaseModel):
    user_id: uuid.UUID
    skills: list[SkillSeries]


class HeatmapOut(BaseModel):
    teams: list[str] = Field(description="Rows.")
    skills: list[str] = Field(description="Columns.")
    averages: list[list[float | None]] = Field(
        description="averages[row][column]: the team's average score on the skill."
    )


class ScoreBucket(BaseModel):
    low: int = Field(description="The lowest score in the bucket.")
    high: int = Field(description="The highest: low + bucket - 1, and 100 in the last bucket.")
    sessions: int = Field(description="Scored sessions whose AI score falls in it.")


class ScoreDistributionOut(BaseModel):
    bucket: int = Field(description="Each bucket's width in points.")
    buckets: list[ScoreBucket] = Field(
        description="Every bucket from 0 up, empty ones too: the bars of a histogram."
    )
    scored: int
    passed: int = Field(description="Scored sessions the evaluator passed.")


# --- courses ---------------------------------------------------------------------------------

CourseSlug = Annotated[str, Field(pattern=SLUG_PATTERN)]


class CourseSpec(StorableText):
    model_config = ConfigDict(extra="forbid")

    slug: CourseSlug
    title: str = Field(..., min_length=1, max_length=200)
    pass_score: float = Field(70, ge=0, le=100)
    mode: Literal["practice", "assessment"] = Field(
        "practice", description="assessment: the coach stays quiet in this course's sessions."
    )
    scenarios: list[CourseSlug] = Field(..., min_length=1, max_length=20, description="In order.")
    status: Literal["draft", "published", "archived"] = Field(
        "draft", description="Trainees see published courses; archived ones keep their results."
    )

    @field_validator("scenarios")
    @classmethod
    def _distinct(cls, slugs: list[str]) -> list[str]:
        if len(set(slugs)) != len(slugs):
            raise ValueError("a scenario appears in a course once")
        return slugs


class AssignmentIn(StorableText):
    model_config = ConfigDict(extra="forbid")

    team: TeamName | None = None
    user_id: uuid.UUID | None = None
    due_at: datetime | None = None

    @field_validator("due_at")
    @classmethod
    def _storable_deadline(cls, value: datetime | None) -> datetime | None:
        # PostgreSQL would store 9999-12-31T23:00-14:00, but as UTC it is in the year 10000,
        # which no Python datetime can be read back into.
        if value is not None and not 1970 <= value.year <= 9998:
            raise ValueError("due_at: a date from 1970 to 9998")
        return value

    @model_validator(mode="after")
    def _one_assignee(self) -> AssignmentIn:
        if (self.team is None) == (self.user_id is None):
            raise ValueError("assign to a team or to a user, not both")
        return self


class AssignmentOut(BaseModel):
    id: uuid.UUID
    course: str
    team: str | None
    user_id: uuid.UUID | None
    due_at: datetime | None


class ScenarioProgress(BaseModel):
    slug: str
    title: str
    best_score: float | None
    passed: bool


class MyCourseOut(BaseModel):
    slug: str
    title: str
    mode: str
    pass_score: float
    due_at: datetime | None
    scenarios: list[ScenarioProgress]
    completed: bool
