"""The queries behind the analytics routes; ``user_ids`` None means the whole company."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Integer, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import (
    SessionEvaluation,
    SessionStatus,
    SkillScore,
    Team,
    TeamMember,
    TrainingSession,
)


def _among(column, user_ids: set[uuid.UUID] | None):
    return column.in_(user_ids) if user_ids is not None else True


async def overview(
    session: AsyncSession, *, user_ids: set[uuid.UUID] | None
) -> tuple[int, int, int, int, float | None]:
    started, ended = (
        await session.execute(
            select(
                func.count(),
                func.count().filter(TrainingSession.status == SessionStatus.ended),
            ).where(_among(TrainingSession.user_id, user_ids))
        )
    ).one()
    scored, passed, average = (
        await session.execute(
            select(
                func.count(),
                func.count().filter(SessionEvaluation.passed),
                func.avg(SessionEvaluation.score),
            ).where(_among(SessionEvaluation.user_id, user_ids))
        )
    ).one()
    return started, ended, scored, passed, average


async def skill_history(
    session: AsyncSession, *, user_id: uuid.UUID
) -> list[tuple[str, uuid.UUID, datetime, float]]:
    rows = await session.execute(
        select(SkillScore.skill, SkillScore.session_id, SkillScore.created_at, SkillScore.score)
        .where(SkillScore.user_id == user_id)
        .order_by(SkillScore.created_at, SkillScore.id)
    )
    return [(row[0], row[1], row[2], row[3]) for row in rows]


async def team_skill_averages(
    session: AsyncSession, *, user_ids: set[uuid.UUID] | None
) -> dict[tuple[str, str], float]:
    rows = await session.execute(
        select(Team.name, SkillScore.skill, func.avg(SkillScore.score))
        .join(TeamMember, TeamMember.team_id == Team.id)
        .join(SkillScore, SkillScore.user_id == TeamMember.user_id)
        .where(_among(SkillScore.user_id, user_ids))
        .group_by(Team.name, SkillScore.skill)
    )
    return {(team, skill): round(float(avg), 1) for team, skill, avg in rows}


async def score_buckets(
    session: AsyncSession, *, user_ids: set[uuid.UUID] | None, width: int
) -> dict[int, tuple[int, int]]:
    """Scored sessions per bucket of the evaluator's score: {bucket index: (sessions, passed)},
    bucket i holding i*width <= score < (i+1)*width, and the last one 100 too."""
    last = 100 // width - 1
    index = func.least(func.greatest(func.floor(SessionEvaluation.score / width), 0), last)
    scores = (
        select(index.cast(Integer).label("bucket"), SessionEvaluation.passed)
        .where(_among(SessionEvaluation.user_id, user_ids))
        .subquery()
    )
    rows = await session.execute(
        select(scores.c.bucket, func.count(), func.count().filter(scores.c.passed)).group_by(
            scores.c.bucket
        )
    )
    return {i: (sessions, passed) for i, sessions, passed in rows}
