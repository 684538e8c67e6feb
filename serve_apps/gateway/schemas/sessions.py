"""Bodies of the scenario and session routes."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from serve_apps.contracts.knowledge import RetrievedChunk
from serve_apps.contracts.specs import SLUG_PATTERN, StorableText
from serve_apps.contracts.turn import SessionModeName


class CreateSessionRequest(StorableText):
    model_config = ConfigDict(extra="forbid")

    scenario: str = Field(
        ...,
        min_length=1,
        max_length=64,
        description="Scenario id or slug.",
        examples=["crm-discovery-call"],
    )
    mode: SessionModeName = Field(
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
