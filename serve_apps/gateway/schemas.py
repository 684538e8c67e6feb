"""Request and response bodies of the gateway's HTTP routes."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field


class CreateSessionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    scenario: str = Field(
        ...,
        min_length=1,
        max_length=64,
        description="Scenario id or slug.",
        examples=["crm-discovery-call"],
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


class SessionOut(BaseModel):
    id: uuid.UUID
    status: str
    created_at: datetime
    scenario: ScenarioOut
    stream_url: str = Field(description="WebSocket path that carries the conversation.")
    turns: list[TurnOut] = Field(default_factory=list)


class HealthOut(BaseModel):
    status: str
    checks: dict[str, str] = Field(default_factory=dict)
