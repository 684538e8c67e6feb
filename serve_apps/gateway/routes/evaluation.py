"""Ending a session and scoring it, and a session's report."""

from __future__ import annotations

import uuid

from fastapi import APIRouter

from db import training_repository as training
from serve_apps.contracts.turn import EvaluationReport
from serve_apps.gateway.deps import CallerDep, StateDep, TenantSessionDep
from serve_apps.gateway.schemas.evaluation import AgentEventOut, SessionReportOut
from serve_apps.gateway.use_cases.evaluation import finish_session
from serve_apps.gateway.use_cases.sessions import visible_training_session

router = APIRouter(tags=["training"])


@router.post("/v1/sessions/{session_id}/end", response_model=SessionReportOut)
async def end_session(session_id: uuid.UUID, who: CallerDep, state: StateDep) -> SessionReportOut:
    """End the caller's session and score it against its rubric (once)."""
    report, _ = await finish_session(
        state.sessions, state.orchestrator, state.knowledge, who, session_id
    )
    return SessionReportOut(session_id=session_id, status="ended", evaluation=report)


@router.get("/v1/sessions/{session_id}/report", response_model=SessionReportOut)
async def session_report(
    session_id: uuid.UUID, who: CallerDep, session: TenantSessionDep
) -> SessionReportOut:
    """A session's score and every agent event (trainees: their own; managers: their
    teams'; admins: the company's)."""
    training_session = await visible_training_session(session, who, session_id)
    evaluation = await training.evaluation_of(session, session_id=session_id)
    events = await training.agent_events(session, session_id=session_id)
    return SessionReportOut(
        session_id=session_id,
        status=training_session.status.value,
        evaluation=EvaluationReport.model_validate(evaluation.report) if evaluation else None,
        events=[
            AgentEventOut(
                reply_to=e.reply_to_seq,
                agent=e.agent,
                kind=e.kind,
                payload=e.payload,
                created_at=e.created_at,
            )
            for e in events
        ],
    )
