"""A session's report: the evaluator's score and the agents' events."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from serve_apps.contracts.turn import EvaluationReport


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
