"""Request and response bodies of the gateway's HTTP routes."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from retrieval.chunking import ChunkingConfig
from serve_apps.knowledge.contracts import ExplainedChunk, RetrievedChunk
from serve_apps.orchestrator.contracts import EvaluationReport


class CreateSessionRequest(BaseModel):
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
        "review and the score still run); conversation: the persona alone.",
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


class KnowledgeBaseSettings(BaseModel):
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


class LoginRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tenant: str = Field(..., min_length=1, max_length=64, description="Company slug.")
    email: str = Field(..., min_length=3, max_length=320, pattern=r"^[^@\s]+@[^@\s]+$")
    password: str = Field(..., min_length=1, max_length=1024)


class RefreshRequest(BaseModel):
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
