"""Scenarios to practise, and starting and reading a training session."""

from __future__ import annotations

import uuid

from fastapi import APIRouter

from db import people_repository as people
from db import repositories as repo
from db.models import Scenario
from db.transcript import stored_turn
from serve_apps.gateway.deps import CallerDep, StateDep, TenantSessionDep
from serve_apps.gateway.errors import APIError
from serve_apps.gateway.schemas.sessions import (
    CreateSessionRequest,
    PersonaOut,
    ScenarioOut,
    SessionOut,
    TurnOut,
)
from serve_apps.gateway.use_cases.sessions import assign_npc_model, start_session

router = APIRouter(tags=["training"])


def _scenario_out(scenario: Scenario) -> ScenarioOut:
    return ScenarioOut(
        id=scenario.id,
        slug=scenario.slug,
        title=scenario.title,
        stage=scenario.stage,
        difficulty=scenario.difficulty,
        description=scenario.description,
        personas=[
            PersonaOut(
                slug=p.persona.slug,
                name=p.persona.name,
                role=p.persona.role,
                company=p.persona.company,
            )
            for p in scenario.personas
        ],
    )


@router.get("/v1/scenarios", response_model=list[ScenarioOut])
async def scenarios(session: TenantSessionDep) -> list[ScenarioOut]:
    return [_scenario_out(s) for s in await repo.list_scenarios(session)]


@router.post("/v1/sessions", response_model=SessionOut, status_code=201)
async def create_session(
    body: CreateSessionRequest, who: CallerDep, session: TenantSessionDep, state: StateDep
) -> SessionOut:
    """A new training session; 503 ``overloaded`` with ``Retry-After`` while every place for
    a live conversation is taken."""
    await state.admission.check_room()
    session_id = uuid.uuid4()
    npc_model = await assign_npc_model(state.model_routing, session_id)
    training_session, scenario = await start_session(
        session,
        who,
        scenario_key=body.scenario,
        mode=body.mode,
        course=body.course,
        session_id=session_id,
        npc_model=npc_model,
    )
    return SessionOut(
        id=training_session.id,
        status=training_session.status.value,
        mode=training_session.mode.value,
        created_at=training_session.created_at,
        scenario=_scenario_out(scenario),
        stream_url=f"/v1/sessions/{training_session.id}/stream",
    )


@router.get("/v1/sessions/{session_id}", response_model=SessionOut)
async def get_session(
    session_id: uuid.UUID, who: CallerDep, session: TenantSessionDep
) -> SessionOut:
    """A session with its turns: trainees their own, managers their teams', admins any."""
    visible = await people.visible_user_ids(session, user_id=who.user_id, role=who.role)
    try:
        ctx = await repo.load_session_context(session, session_id=session_id)
    except repo.NotFoundError:
        ctx = None
    if ctx is None or (visible is not None and ctx.session.user_id not in visible):
        raise APIError(404, "session_not_found", "no such training session")
    speakers = {p.id: p.slug for p in ctx.personas}
    return SessionOut(
        id=ctx.session.id,
        status=ctx.session.status.value,
        mode=ctx.session.mode.value,
        created_at=ctx.session.created_at,
        scenario=_scenario_out(ctx.scenario),
        stream_url=f"/v1/sessions/{ctx.session.id}/stream",
        turns=[
            TurnOut.model_validate(stored_turn(t, speakers), from_attributes=True)
            for t in ctx.turns
        ],
    )
