"""Courses, their assignments, and a trainee's progress through them."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import (
    Course,
    CourseAssignment,
    CourseStatus,
    Scenario,
    SessionEvaluation,
    TeamMember,
    TrainingSession,
)


async def list_courses(session: AsyncSession) -> list[Course]:
    return list(await session.scalars(select(Course).order_by(Course.slug)))


async def course_by_slug(session: AsyncSession, *, slug: str) -> Course | None:
    return await session.scalar(select(Course).where(Course.slug == slug))


async def scenario_ids_by_slug(session: AsyncSession, *, slugs: list[str]) -> dict[str, uuid.UUID]:
    rows = await session.execute(select(Scenario.slug, Scenario.id).where(Scenario.slug.in_(slugs)))
    return {slug: sid for slug, sid in rows}


async def scenario_slugs(session: AsyncSession, *, ids: list[str]) -> dict[str, str]:
    return {sid: slug for sid, (slug, _) in (await scenario_titles(session, ids=ids)).items()}


async def scenario_titles(session: AsyncSession, *, ids: list[str]) -> dict[str, tuple[str, str]]:
    wanted = [uuid.UUID(i) for i in ids]
    rows = await session.execute(
        select(Scenario.id, Scenario.slug, Scenario.title).where(Scenario.id.in_(wanted))
    )
    return {str(sid): (slug, title) for sid, slug, title in rows}


async def assignments(session: AsyncSession, *, course_id: uuid.UUID) -> list[CourseAssignment]:
    return list(
        await session.scalars(
            select(CourseAssignment)
            .where(CourseAssignment.course_id == course_id)
            .order_by(CourseAssignment.created_at)
        )
    )


async def assigned_to(
    session: AsyncSession, *, user_id: uuid.UUID
) -> list[tuple[Course, datetime | None]]:
    """Published courses given to the user or one of their teams, with the earliest deadline."""
    my_teams = select(TeamMember.team_id).where(TeamMember.user_id == user_id)
    rows = await session.execute(
        select(Course, func.min(CourseAssignment.due_at))
        .join(CourseAssignment, CourseAssignment.course_id == Course.id)
        .where(
            Course.status == CourseStatus.published,
            or_(CourseAssignment.user_id == user_id, CourseAssignment.team_id.in_(my_teams)),
        )
        .group_by(Course.id)
        .order_by(Course.slug)
    )
    return [(course, due) for course, due in rows]


async def best_scores(
    session: AsyncSession, *, user_id: uuid.UUID, course_id: uuid.UUID
) -> dict[str, float]:
    rows = await session.execute(
        select(TrainingSession.scenario_id, func.max(SessionEvaluation.score))
        .join(SessionEvaluation, SessionEvaluation.session_id == TrainingSession.id)
        .where(TrainingSession.user_id == user_id, TrainingSession.course_id == course_id)
        .group_by(TrainingSession.scenario_id)
    )
    return {str(sid): float(score) for sid, score in rows}
