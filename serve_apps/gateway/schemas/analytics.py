"""Bodies of the analytics routes, shaped for charts."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, Field


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
