"""Finding a course, and the course a new session runs in."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from db import course_repository as courses
from db.models import Course, CourseStatus, Scenario
from serve_apps.gateway.errors import APIError
from serve_apps.gateway.identity import Identity


async def find_course(session: AsyncSession, slug: str) -> Course:
    course = await courses.course_by_slug(session, slug=slug)
    if course is None:
        raise APIError(404, "course_not_found", f"no course {slug!r}")
    return course


async def course_for_session(
    session: AsyncSession, who: Identity, slug: str, scenario: Scenario
) -> Course:
    """The course a new session runs in: published, holding the scenario, and assigned to
    the trainee (admins and managers may try any published course)."""
    course = await find_course(session, slug)
    if course.status != CourseStatus.published:
        raise APIError(409, "course_not_open", f"course {slug!r} is {course.status.value}")
    if str(scenario.id) not in course.scenario_ids:
        raise APIError(422, "scenario_not_in_course", f"{scenario.slug!r} is not in {slug!r}")
    if who.role == "trainee":
        assigned = {c.id for c, _ in await courses.assigned_to(session, user_id=who.user_id)}
        if course.id not in assigned:
            raise APIError(403, "course_not_assigned", f"course {slug!r} is not assigned to you")
    return course
