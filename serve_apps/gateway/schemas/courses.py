"""Bodies of the course routes."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from serve_apps.contracts.specs import SLUG_PATTERN, StorableText
from serve_apps.gateway.schemas.common import TeamName

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
