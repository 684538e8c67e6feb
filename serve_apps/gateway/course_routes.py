"""Courses: scenarios in order with a pass score, assigned to teams or people with a
deadline; draft, published or archived (archived keeps its results and takes no new
sessions).

A mixin of the gateway deployment. Admins and managers edit and assign; a trainee reads
their published courses with their progress (``GET /v1/me/courses``) and starts a course's
sessions with ``POST /v1/sessions {"scenario", "course"}``.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Path, Request
from sqlalchemy.exc import IntegrityError

from db import course_repository as courses
from db import people_repository as people
from db.engine import tenant_transaction
from db.models import Course, CourseAssignment, CourseStatus, Scenario, SessionMode
from serve_apps.contracts.specs import SLUG_PATTERN
from serve_apps.gateway.api import api
from serve_apps.gateway.errors import APIError
from serve_apps.gateway.identity import Identity
from serve_apps.gateway.schemas import (
    AssignmentIn,
    AssignmentOut,
    CourseSpec,
    MyCourseOut,
    ScenarioProgress,
)

Slug = Annotated[str, Path(pattern=SLUG_PATTERN, description="Course slug.")]
EDITORS = ("admin", "manager")


class CourseRoutes:
    # Provided by the gateway deployment this is mixed into.
    sessions: Any
    _identity_from: Any
    _audit: Any

    async def _course(self, session: Any, slug: str) -> Course:
        course = await courses.course_by_slug(session, slug=slug)
        if course is None:
            raise APIError(404, "course_not_found", f"no course {slug!r}")
        return course

    async def _scenario_ids(self, session: Any, slugs: list[str]) -> list[str]:
        found = await courses.scenario_ids_by_slug(session, slugs=slugs)
        if missing := [s for s in slugs if s not in found]:
            raise APIError(422, "unknown_reference", f"no such scenarios: {missing}")
        return [str(found[s]) for s in slugs]

    async def _course_spec(self, session: Any, course: Course) -> CourseSpec:
        slugs = await courses.scenario_slugs(session, ids=course.scenario_ids)
        return CourseSpec(
            slug=course.slug,
            title=course.title,
            pass_score=course.pass_score,
            mode=course.mode.value,
            scenarios=[slugs[i] for i in course.scenario_ids if i in slugs],
            status=course.status.value,
        )

    @api.get("/v1/courses", response_model=list[CourseSpec], tags=["courses"])
    async def list_courses(self, request: Request) -> list[CourseSpec]:
        who = await self._identity_from(request)
        who.require(*EDITORS)
        async with tenant_transaction(self.sessions, who.tenant_id) as session:
            return [
                await self._course_spec(session, c) for c in await courses.list_courses(session)
            ]

    @api.post("/v1/courses", response_model=CourseSpec, status_code=201, tags=["courses"])
    async def create_course(self, body: CourseSpec, request: Request) -> CourseSpec:
        who = await self._identity_from(request)
        who.require(*EDITORS)
        try:
            async with tenant_transaction(self.sessions, who.tenant_id) as session:
                session.add(
                    Course(
                        tenant_id=who.tenant_id,
                        slug=body.slug,
                        title=body.title,
                        pass_score=body.pass_score,
                        mode=SessionMode(body.mode),
                        status=CourseStatus(body.status),
                        scenario_ids=await self._scenario_ids(session, body.scenarios),
                    )
                )
                await session.flush()
                await self._audit(session, who, request, "course.create", body.slug)
        except IntegrityError:
            raise APIError(409, "course_exists", f"a course {body.slug!r} exists already") from None
        return body

    @api.get("/v1/courses/{slug}", response_model=CourseSpec, tags=["courses"])
    async def get_course(self, slug: Slug, request: Request) -> CourseSpec:
        who = await self._identity_from(request)
        who.require(*EDITORS)
        async with tenant_transaction(self.sessions, who.tenant_id) as session:
            return await self._course_spec(session, await self._course(session, slug))

    @api.put("/v1/courses/{slug}", response_model=CourseSpec, tags=["courses"])
    async def update_course(self, slug: Slug, body: CourseSpec, request: Request) -> CourseSpec:
        """Edit a course, or move it between draft, published and archived."""
        if body.slug != slug:
            raise APIError(422, "invalid_request", "the body's slug must match the path's")
        who = await self._identity_from(request)
        who.require(*EDITORS)
        async with tenant_transaction(self.sessions, who.tenant_id) as session:
            course = await self._course(session, slug)
            course.title = body.title
            course.pass_score = body.pass_score
            course.mode = SessionMode(body.mode)
            course.status = CourseStatus(body.status)
            course.scenario_ids = await self._scenario_ids(session, body.scenarios)
            await self._audit(session, who, request, "course.update", slug, status=body.status)
        return body

    @api.post(
        "/v1/courses/{slug}/assignments",
        response_model=AssignmentOut,
        status_code=201,
        tags=["courses"],
    )
    async def assign_course(
        self, slug: Slug, body: AssignmentIn, request: Request
    ) -> AssignmentOut:
        """Give the course to a team or one person, with an optional deadline."""
        who = await self._identity_from(request)
        who.require(*EDITORS)
        async with tenant_transaction(self.sessions, who.tenant_id) as session:
            course = await self._course(session, slug)
            team_id = None
            if body.team is not None:
                team = (await people.teams_by_name(session, [body.team])).get(body.team)
                if team is None:
                    raise APIError(422, "unknown_team", f"no team {body.team!r}")
                team_id = team.id
            elif not await people.list_users(session, ids={body.user_id}):
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
            await self._audit(
                session,
                who,
                request,
                "course.assign",
                slug,
                team=body.team,
                user_id=str(body.user_id) if body.user_id else None,
            )
        return AssignmentOut(
            id=assignment.id, course=slug, team=body.team, user_id=body.user_id, due_at=body.due_at
        )

    @api.get("/v1/courses/{slug}/assignments", response_model=list[AssignmentOut], tags=["courses"])
    async def course_assignments(self, slug: Slug, request: Request) -> list[AssignmentOut]:
        who = await self._identity_from(request)
        who.require(*EDITORS)
        async with tenant_transaction(self.sessions, who.tenant_id) as session:
            course = await self._course(session, slug)
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

    @api.get("/v1/me/courses", response_model=list[MyCourseOut], tags=["courses"])
    async def my_courses(self, request: Request) -> list[MyCourseOut]:
        """The published courses assigned to the caller (directly or through a team), each
        scenario with the caller's best score in the course and whether it passed."""
        who = await self._identity_from(request)
        async with tenant_transaction(self.sessions, who.tenant_id) as session:
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

    async def course_for_session(
        self, session: Any, who: Identity, slug: str, scenario: Scenario
    ) -> Course:
        """The course a new session runs in: published, holding the scenario, and assigned to
        the trainee (admins and managers may try any published course)."""
        course = await self._course(session, slug)
        if course.status != CourseStatus.published:
            raise APIError(409, "course_not_open", f"course {slug!r} is {course.status.value}")
        if str(scenario.id) not in course.scenario_ids:
            raise APIError(422, "scenario_not_in_course", f"{scenario.slug!r} is not in {slug!r}")
        if who.role == "trainee":
            assigned = {c.id for c, _ in await courses.assigned_to(session, user_id=who.user_id)}
            if course.id not in assigned:
                raise APIError(
                    403, "course_not_assigned", f"course {slug!r} is not assigned to you"
                )
        return course
