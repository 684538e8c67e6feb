"""Courses: scenarios in order with a pass score, assigned to teams or people with a
deadline; draft, published or archived (archived keeps its results and takes no new
sessions).

Admins and managers edit and assign; a trainee reads their published courses with their
progress (``GET /v1/me/courses``) and starts a course's sessions with ``POST /v1/sessions
{"scenario", "course"}``.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from db import course_repository as courses
from db import people_repository as people
from db.engine import tenant_transaction
from db.models import Course, CourseAssignment, CourseStatus, SessionMode
from serve_apps.contracts.specs import SLUG_PATTERN
from serve_apps.gateway.deps import AuditDep, CallerDep, EditorDep, StateDep, TenantSessionDep
from serve_apps.gateway.errors import APIError
from serve_apps.gateway.schemas.courses import (
    AssignmentIn,
    AssignmentOut,
    CourseSpec,
    MyCourseOut,
    ScenarioProgress,
)
from serve_apps.gateway.use_cases.courses import find_course

router = APIRouter(tags=["courses"])

Slug = Annotated[str, Path(pattern=SLUG_PATTERN, description="Course slug.")]


async def _scenario_ids(session: AsyncSession, slugs: list[str]) -> list[str]:
    found = await courses.scenario_ids_by_slug(session, slugs=slugs)
    if missing := [s for s in slugs if s not in found]:
        raise APIError(422, "unknown_reference", f"no such scenarios: {missing}")
    return [str(found[s]) for s in slugs]


async def _course_spec(session: AsyncSession, course: Course) -> CourseSpec:
    slugs = await courses.scenario_slugs(session, ids=course.scenario_ids)
    return CourseSpec(
        slug=course.slug,
        title=course.title,
        pass_score=course.pass_score,
        mode=course.mode.value,
        scenarios=[slugs[i] for i in course.scenario_ids if i in slugs],
        status=course.status.value,
    )


@router.get("/v1/courses", response_model=list[CourseSpec])
async def list_courses(who: EditorDep, session: TenantSessionDep) -> list[CourseSpec]:
    return [await _course_spec(session, c) for c in await courses.list_courses(session)]


@router.post("/v1/courses", response_model=CourseSpec, status_code=201)
async def create_course(
    body: CourseSpec, who: EditorDep, audit: AuditDep, state: StateDep
) -> CourseSpec:
    try:
        async with tenant_transaction(state.sessions, who.tenant_id) as session:
            session.add(
                Course(
                    tenant_id=who.tenant_id,
                    slug=body.slug,
                    title=body.title,
                    pass_score=body.pass_score,
                    mode=SessionMode(body.mode),
                    status=CourseStatus(body.status),
                    scenario_ids=await _scenario_ids(session, body.scenarios),
                )
            )
            await session.flush()
            await audit.record(session, "course.create", body.slug)
    except IntegrityError:
        raise APIError(409, "course_exists", f"a course {body.slug!r} exists already") from None
    return body


@router.get("/v1/courses/{slug}", response_model=CourseSpec)
async def get_course(slug: Slug, who: EditorDep, session: TenantSessionDep) -> CourseSpec:
    return await _course_spec(session, await find_course(session, slug))


@router.put("/v1/courses/{slug}", response_model=CourseSpec)
async def update_course(
    slug: Slug, body: CourseSpec, who: EditorDep, audit: AuditDep, session: TenantSessionDep
) -> CourseSpec:
    """Edit a course, or move it between draft, published and archived."""
    if body.slug != slug:
        raise APIError(422, "invalid_request", "the body's slug must match the path's")
    course = await find_course(session, slug)
    course.title = body.title
    course.pass_score = body.pass_score
    course.mode = SessionMode(body.mode)
    course.status = CourseStatus(body.status)
    course.scenario_ids = await _scenario_ids(session, body.scenarios)
    await audit.record(session, "course.update", slug, status=body.status)
    return body


@router.post("/v1/courses/{slug}/assignments", response_model=AssignmentOut, status_code=201)
async def assign_course(
    slug: Slug, body: AssignmentIn, who: EditorDep, audit: AuditDep, session: TenantSessionDep
) -> AssignmentOut:
    """Give the course to a team or one person, with an optional deadline."""
    course = await find_course(session, slug)
    team_id = None
    if body.team is not None:
        team = (await people.teams_by_name(session, [body.team])).get(body.team)
        if team is None:
            raise APIError(422, "unknown_team", f"no team {body.team!r}")
        team_id = team.id
    elif body.user_id is not None and not await people.list_users(session, ids={body.user_id}):
        raise APIError(422, "unknown_user", "no such user")
    assignment = CourseAssignment(
        tenant_id=who.tenant_id,
        course_id=course.id,
        team_id=team_id,
        user_id=body.user_id,
        due_at=body.due_at,
    )
    session.add(assignment)
    await session.flush()
    await audit.record(
        session,
        "course.assign",
        slug,
        team=body.team,
        user_id=str(body.user_id) if body.user_id else None,
    )
    return AssignmentOut(
        id=assignment.id, course=slug, team=body.team, user_id=body.user_id, due_at=body.due_at
    )


@router.get("/v1/courses/{slug}/assignments", response_model=list[AssignmentOut])
async def course_assignments(
    slug: Slug, who: EditorDep, session: TenantSessionDep
) -> list[AssignmentOut]:
    course = await find_course(session, slug)
    teams = {t.id: t.name for t in await people.list_teams(session)}
    return [
        AssignmentOut(
            id=a.id,
            course=slug,
            team=teams.get(a.team_id) if a.team_id else None,
            user_id=a.user_id,
            due_at=a.due_at,
        )
        for a in await courses.assignments(session, course_id=course.id)
    ]


@router.get("/v1/me/courses", response_model=list[MyCourseOut])
async def my_courses(who: CallerDep, session: TenantSessionDep) -> list[MyCourseOut]:
    """The published courses assigned to the caller (directly or through a team), each
    scenario with the caller's best score in the course and whether it passed."""
    assigned = await courses.assigned_to(session, user_id=who.user_id)
    out = []
    for course, due_at in assigned:
        best = await courses.best_scores(session, user_id=who.user_id, course_id=course.id)
        titles = await courses.scenario_titles(session, ids=course.scenario_ids)
        progress = [
            ScenarioProgress(
                slug=titles[sid][0],
                title=titles[sid][1],
                best_score=best.get(sid),
                passed=best.get(sid, -1) >= course.pass_score,
            )
            for sid in course.scenario_ids
            if sid in titles
        ]
        out.append(
            MyCourseOut(
                slug=course.slug,
                title=course.title,
                mode=course.mode.value,
                pass_score=course.pass_score,
                due_at=due_at,
                scenarios=progress,
                completed=all(p.passed for p in progress),
            )
        )
    return out
