"""Starting a training session, and finding one the caller may see."""

from __future__ import annotations

import logging
import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from db import people_repository as people
from db import repositories as repo
from db.models import Scenario, SessionMode, TrainingSession
from serve_apps.contracts.turn import SessionModeName
from serve_apps.gateway.errors import APIError
from serve_apps.gateway.identity import Identity
from serve_apps.gateway.use_cases.courses import course_for_session
from serve_apps.model_lifecycle.routing import RoutingStore

log = logging.getLogger("salesboost.gateway")


async def start_session(
    session: AsyncSession,
    who: Identity,
    *,
    scenario_key: str,
    mode: SessionModeName,
    course: str | None,
    session_id: uuid.UUID | None = None,
    npc_model: str | None = None,
) -> tuple[TrainingSession, Scenario]:
    """A new session of the caller's on a scenario (id or slug); a course, when given,
    decides the mode. ``npc_model``: the persona's model version drawn for ``session_id``."""
    try:
        scenario = await repo.scenario_by_key(session, key=scenario_key)
    except repo.NotFoundError:
        raise APIError(404, "scenario_not_found", f"no scenario {scenario_key!r}") from None
    session_mode, course_id = SessionMode(mode), None
    if course is not None:
        in_course = await course_for_session(session, who, course, scenario)
        session_mode, course_id = in_course.mode, in_course.id
    training_session = await repo.create_training_session(
        session,
        tenant_id=who.tenant_id,
        user_id=who.user_id,
        scenario_id=scenario.id,
        mode=session_mode,
        course_id=course_id,
        session_id=session_id,
        npc_model=npc_model,
    )
    await session.refresh(training_session)
    return training_session, scenario


async def assign_npc_model(store: RoutingStore, session_id: uuid.UUID) -> str | None:
    """The persona's model version a new session gets, drawn once from its id: a canary's
    candidate for its share of the sessions, the active version for the rest. Kept with the
    session, so that all its turns go to that version."""
    routing = await store.read()
    route = routing.assign("npc", session_id)
    if route is not None and routing.canary("npc") is not None:
        try:  # the canary's running count (salesboost models status); the row is the record
            await store.count_canary_session("npc", route.version)
        except Exception as exc:
            log.warning("canary session not counted: %r", exc)
    return route.version if route else None


async def visible_training_session(
    session: AsyncSession, who: Identity, session_id: uuid.UUID
) -> TrainingSession:
    """A session the caller may see (trainees their own, managers their teams', admins any),
    or 404."""
    visible = await people.visible_user_ids(session, user_id=who.user_id, role=who.role)
    try:
        found = await repo.get_training_session(session, session_id=session_id)
    except repo.NotFoundError:
        found = None
    if found is None or (visible is not None and found.user_id not in visible):
        raise APIError(404, "session_not_found", "no such training session")
    return found
