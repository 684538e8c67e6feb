"""SQLAlchemy 2 models. Every tenant-owned row carries ``tenant_id``."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Annotated, get_args

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from serve_apps.contracts.turn import SessionModeName

JsonDoc = JSON().with_variant(JSONB(), "postgresql")


class Base(DeclarativeBase):
    # Every id is a PostgreSQL uuid and every timestamp carries its time zone.
    type_annotation_map = {uuid.UUID: UUID(as_uuid=True), datetime: DateTime(timezone=True)}


# The columns most tables share: their id, when the row was made, its company (every
# tenant-owned row, for row-level security), and the person or session it belongs to (gone
# with them).
Id = Annotated[uuid.UUID, mapped_column(primary_key=True, default=uuid.uuid4)]
CreatedAt = Annotated[datetime, mapped_column(server_default=func.now())]
TenantId = Annotated[
    uuid.UUID, mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
]
UserId = Annotated[uuid.UUID, mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)]
SessionId = Annotated[
    uuid.UUID, mapped_column(ForeignKey("training_sessions.id", ondelete="CASCADE"))
]


class UserRole(enum.StrEnum):
    admin = "admin"
    manager = "manager"
    trainee = "trainee"


class SessionStatus(enum.StrEnum):
    active = "active"
    ended = "ended"


# The modes are named once, in the contracts the gateway and the orchestrator share; the
# column's enum is made of those names (mypy cannot see members made at run time).
SessionMode = enum.StrEnum(  # type: ignore[misc]
    "SessionMode",
    [(name, name) for name in get_args(SessionModeName)],
    module=__name__,
)


class Speaker(enum.StrEnum):
    trainee = "trainee"
    npc = "npc"


class Tenant(Base):
    __tablename__ = "tenants"

    id: Mapped[Id]
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[CreatedAt]


class User(Base):
    __tablename__ = "users"
    __table_args__ = (UniqueConstraint("tenant_id", "email"),)

    id: Mapped[Id]
    tenant_id: Mapped[TenantId]
    email: Mapped[str] = mapped_column(String(320))
    display_name: Mapped[str] = mapped_column(String(200))
    role: Mapped[UserRole] = mapped_column(Enum(UserRole, name="user_role"))
    # argon2id; None until the user sets a password (an invited user cannot sign in yet).
    password_hash: Mapped[str | None] = mapped_column(String(200))
    active: Mapped[bool] = mapped_column(default=True, server_default=text("true"))
    created_at: Mapped[CreatedAt]


class RefreshToken(Base):
    """A refresh token, stored as its SHA-256: presenting it once rotates it.

    Presenting a token that was already rotated or revoked revokes every live token of that
    user (someone else holds a copy).
    """

    __tablename__ = "refresh_tokens"

    id: Mapped[Id]
    tenant_id: Mapped[TenantId]
    user_id: Mapped[UserId]
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    expires_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]
    created_at: Mapped[CreatedAt]


class Persona(Base):
    """A customer played by the NPC model: who they are, what they want, what they hide."""

    __tablename__ = "personas"
    __table_args__ = (UniqueConstraint("tenant_id", "slug"),)

    id: Mapped[Id]
    tenant_id: Mapped[TenantId]
    slug: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(200))
    company: Mapped[str] = mapped_column(String(200))
    personality: Mapped[str] = mapped_column(Text)
    goals: Mapped[list[str]] = mapped_column(JsonDoc, default=list)
    objections: Mapped[list[str]] = mapped_column(JsonDoc, default=list)
    facts: Mapped[list[str]] = mapped_column(JsonDoc, default=list)
    hidden: Mapped[list[str]] = mapped_column(JsonDoc, default=list)
    # Words that make this persona the one to answer in a buying committee (the director).
    topics: Mapped[list[str]] = mapped_column(JsonDoc, default=list)
    created_at: Mapped[CreatedAt]


class Scenario(Base):
    """A practice situation: the product being sold, the stage, and who is across the table."""

    __tablename__ = "scenarios"
    __table_args__ = (UniqueConstraint("tenant_id", "slug"),)

    id: Mapped[Id]
    tenant_id: Mapped[TenantId]
    slug: Mapped[str] = mapped_column(String(64))
    title: Mapped[str] = mapped_column(String(200))
    product: Mapped[str] = mapped_column(Text)
    stage: Mapped[str] = mapped_column(String(64))
    difficulty: Mapped[str] = mapped_column(String(32))
    description: Mapped[str] = mapped_column(Text)
    # The tenant's knowledge base that grounds this scenario's personas (None: no grounding).
    knowledge_base: Mapped[str | None] = mapped_column(String(30))
    # The customer's own papers, and the vendor's public website as the customer has read it:
    # what the persona reads (never the seller's knowledge base above).
    customer_knowledge_base: Mapped[str | None] = mapped_column(String(30))
    vendor_website_knowledge_base: Mapped[str | None] = mapped_column(String(30))
    # The rubric a finished session is scored against (None: no score).
    rubric_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("rubrics.id", ondelete="SET NULL")
    )
    created_at: Mapped[CreatedAt]

    personas: Mapped[list[ScenarioPersona]] = relationship(
        order_by="ScenarioPersona.position",
        lazy="selectin",
        cascade="all, delete-orphan",
        passive_deletes=True,  # the foreign key cascades in the database
    )


class ScenarioPersona(Base):
    """Which personas sit in a scenario, in speaking order (several make a buying committee)."""

    __tablename__ = "scenario_personas"

    tenant_id: Mapped[TenantId]
    scenario_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("scenarios.id", ondelete="CASCADE"), primary_key=True
    )
    persona_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("personas.id", ondelete="CASCADE"), primary_key=True
    )
    position: Mapped[int] = mapped_column(Integer, default=0)

    persona: Mapped[Persona] = relationship(lazy="joined")


class TrainingSession(Base):
    __tablename__ = "training_sessions"

    id: Mapped[Id]
    tenant_id: Mapped[TenantId]
    user_id: Mapped[UserId]
    scenario_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("scenarios.id", ondelete="RESTRICT"))
    status: Mapped[SessionStatus] = mapped_column(
        Enum(SessionStatus, name="session_status"), default=SessionStatus.active
    )
    mode: Mapped[SessionMode] = mapped_column(
        Enum(SessionMode, name="session_mode"),
        default=SessionMode("practice"),
        server_default="practice",
    )
    # The course the session was started in, if any (its mode applies).
    course_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("courses.id", ondelete="SET NULL")
    )
    # Highest sequence number handed out; bumped in the same transaction as the turn insert.
    last_seq: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    # The persona's model version (model_id@config hash) the session was given when it
    # started: a canary's candidate or the active version. Its turns are answered by it for
    # as long as it is served (serve_apps/model_lifecycle/routing.py). None: from before.
    npc_model: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[CreatedAt]
    ended_at: Mapped[datetime | None]


class Turn(Base):
    """One utterance in a training session, numbered by ``seq`` within the session."""

    __tablename__ = "turns"
    __table_args__ = (
        UniqueConstraint("session_id", "seq"),
        Index(
            "uq_turns_client_turn_id",
            "session_id",
            "client_turn_id",
            unique=True,
            postgresql_where=text("client_turn_id IS NOT NULL"),
        ),
        Index(
            "uq_turns_reply_to_seq",
            "session_id",
            "reply_to_seq",
            unique=True,
            postgresql_where=text("reply_to_seq IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    tenant_id: Mapped[TenantId]
    session_id: Mapped[SessionId]
    seq: Mapped[int] = mapped_column(Integer)
    speaker: Mapped[Speaker] = mapped_column(Enum(Speaker, name="speaker"))
    persona_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("personas.id", ondelete="SET NULL")
    )
    client_turn_id: Mapped[str | None] = mapped_column(String(64))
    # For an NPC turn: the trainee turn it answers. Unique, so a reply is stored once.
    reply_to_seq: Mapped[int | None] = mapped_column(Integer)
    content: Mapped[str] = mapped_column(Text)
    output_tokens: Mapped[int | None] = mapped_column(Integer)
    model: Mapped[str | None] = mapped_column(String(200))
    # For an NPC turn: the knowledge chunks the reply was grounded on.
    citations: Mapped[list[dict] | None] = mapped_column(JsonDoc)
    # For an NPC turn generated for its trainee turn: milliseconds from the trainee turn's
    # arrival to the reply's first token at the gateway (what the trainee waited).
    first_token_ms: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[CreatedAt]


class KnowledgeBase(Base):
    """A tenant's knowledge base: how its documents are chunked and which version is live.

    The chunks themselves live in Qdrant, one collection per version; these rows are the
    source of truth for what was uploaded, so any version can be rebuilt.
    """

    __tablename__ = "knowledge_bases"
    __table_args__ = (UniqueConstraint("tenant_id", "slug"),)

    id: Mapped[Id]
    tenant_id: Mapped[TenantId]
    slug: Mapped[str] = mapped_column(String(30))
    chunking: Mapped[dict] = mapped_column(JsonDoc)
    created_at: Mapped[CreatedAt]


class KnowledgeDocument(Base):
    """One uploaded file, kept whole so a re-index can chunk it again."""

    __tablename__ = "knowledge_documents"
    __table_args__ = (UniqueConstraint("knowledge_base_id", "sha256"),)

    id: Mapped[Id]
    tenant_id: Mapped[TenantId]
    knowledge_base_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("knowledge_bases.id", ondelete="CASCADE"), index=True
    )
    sha256: Mapped[str] = mapped_column(String(64))
    filename: Mapped[str] = mapped_column(String(255))
    title: Mapped[str] = mapped_column(String(500))
    size_bytes: Mapped[int] = mapped_column(Integer)
    chunks: Mapped[int] = mapped_column(Integer)
    content: Mapped[bytes] = mapped_column(LargeBinary, deferred=True)
    created_at: Mapped[CreatedAt]


class AuditEvent(Base):
    """An admin action, appended and never changed (the app role may not update or delete)."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    tenant_id: Mapped[TenantId]
    actor_user_id: Mapped[uuid.UUID | None]
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(300))
    details: Mapped[dict] = mapped_column(JsonDoc, default=dict)
    request_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[CreatedAt]


class Rubric(Base):
    """How a finished session is scored: criteria of weighted yes/no checks and a pass score.

    ``criteria`` holds ``serve_apps.contracts.specs.RubricCriterion`` objects, validated
    before they are written.
    """

    __tablename__ = "rubrics"
    __table_args__ = (UniqueConstraint("tenant_id", "slug"),)

    id: Mapped[Id]
    tenant_id: Mapped[TenantId]
    slug: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    pass_score: Mapped[float] = mapped_column(Float)
    criteria: Mapped[list[dict]] = mapped_column(JsonDoc)
    created_at: Mapped[CreatedAt]


class ComplianceRule(Base):
    """A tenant's compliance rule (``serve_apps.contracts.specs.ComplianceRuleSpec``)."""

    __tablename__ = "compliance_rules"
    __table_args__ = (UniqueConstraint("tenant_id", "slug"),)

    id: Mapped[Id]
    tenant_id: Mapped[TenantId]
    slug: Mapped[str] = mapped_column(String(64))
    description: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(String(24))
    applies_to: Mapped[list[str]] = mapped_column(JsonDoc)
    pattern: Mapped[str | None] = mapped_column(Text)
    trigger: Mapped[str | None] = mapped_column(Text)
    examples: Mapped[list[str]] = mapped_column(JsonDoc, default=list)
    threshold: Mapped[float] = mapped_column(Float, default=0.55)
    severity: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[CreatedAt]


class AgentEvent(Base):
    """What an agent said about a turn (hint, compliance finding, review, director's choice)
    or how it failed; every event the trainee saw, and some they did not, in order."""

    __tablename__ = "agent_events"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    tenant_id: Mapped[TenantId]
    session_id: Mapped[SessionId] = mapped_column(index=True)
    reply_to_seq: Mapped[int | None] = mapped_column(Integer)
    agent: Mapped[str] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(32))
    payload: Mapped[dict] = mapped_column(JsonDoc)
    created_at: Mapped[CreatedAt]


class SessionEvaluation(Base):
    """The evaluator's report on a finished session (one per session)."""

    __tablename__ = "session_evaluations"

    session_id: Mapped[SessionId] = mapped_column(primary_key=True)
    tenant_id: Mapped[TenantId]
    user_id: Mapped[UserId]
    rubric_slug: Mapped[str] = mapped_column(String(64))
    score: Mapped[float] = mapped_column(Float)
    passed: Mapped[bool]
    report: Mapped[dict] = mapped_column(JsonDoc)
    created_at: Mapped[CreatedAt]


class SkillScore(Base):
    """One skill's score in one finished session: the history trend pages read."""

    __tablename__ = "skill_scores"
    __table_args__ = (UniqueConstraint("session_id", "skill"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    tenant_id: Mapped[TenantId]
    user_id: Mapped[UserId]
    session_id: Mapped[SessionId]
    skill: Mapped[str] = mapped_column(String(64))
    score: Mapped[float] = mapped_column(Float)
    created_at: Mapped[CreatedAt]


class TraineeMemoryRow(Base):
    """A finished session remembered for the trainee's next one; its id is also the point id
    of its vector in the Qdrant memory collection."""

    __tablename__ = "trainee_memories"

    id: Mapped[Id]
    tenant_id: Mapped[TenantId]
    user_id: Mapped[UserId]
    session_id: Mapped[SessionId] = mapped_column(unique=True)
    summary: Mapped[str] = mapped_column(Text)
    weak_skills: Mapped[list[str]] = mapped_column(JsonDoc)
    created_at: Mapped[CreatedAt]


class Team(Base):
    """A group of people; a manager sees the trainees of the teams they are in."""

    __tablename__ = "teams"
    __table_args__ = (UniqueConstraint("tenant_id", "name"),)

    id: Mapped[Id]
    tenant_id: Mapped[TenantId]
    name: Mapped[str] = mapped_column(String(120))
    created_at: Mapped[CreatedAt]


class TeamMember(Base):
    __tablename__ = "team_members"

    tenant_id: Mapped[TenantId]
    team_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("teams.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )


class Invitation(Base):
    """An invitation to set a password, stored as the SHA-256 of its token; used once."""

    __tablename__ = "invitations"

    id: Mapped[Id]
    tenant_id: Mapped[TenantId]
    user_id: Mapped[UserId]
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    expires_at: Mapped[datetime]
    accepted_at: Mapped[datetime | None]
    created_at: Mapped[CreatedAt]


class CourseStatus(enum.StrEnum):
    draft = "draft"
    published = "published"
    archived = "archived"  # no new sessions; results kept


class Course(Base):
    """A program: scenarios in order, a pass score, and the mode its sessions run in."""

    __tablename__ = "courses"
    __table_args__ = (UniqueConstraint("tenant_id", "slug"),)

    id: Mapped[Id]
    tenant_id: Mapped[TenantId]
    slug: Mapped[str] = mapped_column(String(64))
    title: Mapped[str] = mapped_column(String(200))
    status: Mapped[CourseStatus] = mapped_column(
        Enum(CourseStatus, name="course_status"), default=CourseStatus.draft
    )
    pass_score: Mapped[float] = mapped_column(Float)
    mode: Mapped[SessionMode] = mapped_column(Enum(SessionMode, name="session_mode"))
    scenario_ids: Mapped[list[str]] = mapped_column(JsonDoc)  # in order
    created_at: Mapped[CreatedAt]


class CourseAssignment(Base):
    """A course given to a team or to one person, with a deadline."""

    __tablename__ = "course_assignments"

    id: Mapped[Id]
    tenant_id: Mapped[TenantId]
    course_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("courses.id", ondelete="CASCADE"), index=True
    )
    team_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("teams.id", ondelete="CASCADE"))
    user_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    due_at: Mapped[datetime | None]
    created_at: Mapped[CreatedAt]


class SessionReview(Base):
    """A manager's adjusted score for a finished session, with the reason; kept beside the
    evaluator's (``session_evaluations``), which it never replaces."""

    __tablename__ = "session_reviews"

    session_id: Mapped[SessionId] = mapped_column(primary_key=True)
    tenant_id: Mapped[TenantId]
    reviewer_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    score: Mapped[float] = mapped_column(Float)
    passed: Mapped[bool]
    reason: Mapped[str] = mapped_column(Text)
    created_at: Mapped[CreatedAt]
    updated_at: Mapped[CreatedAt]


class ReviewComment(Base):
    """A manager's comment on one turn of a session, timestamped."""

    __tablename__ = "review_comments"

    id: Mapped[Id]
    tenant_id: Mapped[TenantId]
    session_id: Mapped[SessionId] = mapped_column(index=True)
    seq: Mapped[int] = mapped_column(Integer)
    author_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[CreatedAt]
