"""Bodies of the past-session list and the manager's review."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from serve_apps.contracts.specs import StorableText
from serve_apps.contracts.wire import MAX_SEQ


class SessionSummaryOut(BaseModel):
    id: uuid.UUID
    user_id: uuid.UUID
    trainee: str
    scenario: str
    scenario_title: str
    mode: str
    status: str
    created_at: datetime
    score: float | None = Field(description="The evaluator's score (None: not scored).")
    passed: bool | None
    reviewed_score: float | None = Field(description="The manager's adjusted score, if any.")


class ReviewCommentIn(StorableText):
    model_config = ConfigDict(extra="forbid")

    seq: int = Field(..., ge=1, le=MAX_SEQ, description="The turn the comment is about.")
    text: str = Field(..., min_length=1, max_length=4000)


class ReviewCommentOut(BaseModel):
    id: uuid.UUID
    seq: int
    text: str
    author: str
    created_at: datetime


class AdjustedScoreIn(StorableText):
    model_config = ConfigDict(extra="forbid")

    score: float = Field(..., ge=0, le=100)
    reason: str = Field(..., min_length=3, max_length=4000)


class AdjustedScoreOut(BaseModel):
    score: float
    passed: bool = Field(description="Against the rubric's pass score.")
    reason: str
    reviewer: str
    created_at: datetime
    updated_at: datetime


class SessionReviewOut(BaseModel):
    session_id: uuid.UUID
    ai_score: float | None = Field(description="The evaluator's score, kept as it was.")
    ai_passed: bool | None
    adjusted: AdjustedScoreOut | None
    comments: list[ReviewCommentOut]
