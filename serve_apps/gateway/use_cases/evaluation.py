"""Ending a session: the evaluator's score, the per-skill history and the trainee's memory.

The WebSocket's ``end`` frame and ``POST /v1/sessions/{id}/end`` both come here; a session is
scored once, and asking again returns the stored report.
"""

from __future__ import annotations

import asyncio
import logging
import uuid

from ray.serve.handle import DeploymentHandle
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db import repositories as repo
from db import training_repository as training
from db.engine import tenant_transaction
from db.transcript import transcript_turn
from serve_apps.contracts.specs import RubricSpec, TraineeMemory
from serve_apps.contracts.turn import (
    EvaluationReport,
    EvaluationRequest,
    PersonaCard,
    ScenarioCard,
)
from serve_apps.contracts.wire import ErrorEvent
from serve_apps.gateway.errors import APIError
from serve_apps.gateway.identity import Identity
from serve_apps.gateway.stores import agent_row
from serve_apps.orchestrator.agents.evaluator import memory_of
from serve_apps.telemetry.metrics import product_metrics

log = logging.getLogger("salesboost.gateway")
EVALUATION_TIMEOUT_S = 120
RECALL_TIMEOUT_S = 2


async def finish_session(
    sessions: async_sessionmaker[AsyncSession],
    orchestrator: DeploymentHandle,
    knowledge: DeploymentHandle,
    who: Identity,
    session_id: uuid.UUID,
) -> tuple[EvaluationReport | None, list[ErrorEvent]]:
    """End the session, then score it; the stored report when it was scored before.

    None when the session has no score to give (no rubric, or the persona-only mode).
    """
    async with tenant_transaction(sessions, who.tenant_id) as session:
        try:
            ctx = await repo.load_session_context(
                session, session_id=session_id, user_id=who.user_id
            )
        except repo.NotFoundError:
            raise APIError(404, "session_not_found", "no such training session") from None
        ended_now = await repo.end_training_session(session, session_id=session_id)
        stored = await training.evaluation_of(session, session_id=session_id)
        rubric = await training.rubric_by_id(session, rubric_id=ctx.scenario.rubric_id)
    mode = {"mode": ctx.session.mode.value}
    if ended_now:
        product_metrics().sessions_ended.inc(1, tags=mode)
    if stored is not None:
        return EvaluationReport.model_validate(stored.report), []
    if rubric is None or ctx.session.mode == "conversation":
        return None, []
    speakers = {p.id: p.slug for p in ctx.personas}
    evaluation = EvaluationRequest(
        session_id=str(session_id),
        scenario=ScenarioCard.model_validate(ctx.scenario, from_attributes=True),
        personas=[PersonaCard.model_validate(p, from_attributes=True) for p in ctx.personas],
        transcript=[transcript_turn(t, speakers) for t in ctx.turns],
        rubric=RubricSpec(
            slug=rubric.slug,
            name=rubric.name,
            pass_score=rubric.pass_score,
            criteria=rubric.criteria,
        ),
    )
    report, failures = await asyncio.wait_for(
        orchestrator.evaluate.remote(evaluation), timeout=EVALUATION_TIMEOUT_S
    )
    memory = memory_of(report)
    memory_id = uuid.uuid4()
    async with tenant_transaction(sessions, who.tenant_id) as session:
        first = await training.store_evaluation(
            session,
            tenant_id=who.tenant_id,
            user_id=who.user_id,
            session_id=session_id,
            rubric_slug=rubric.slug,
            score=report.score,
            passed=report.passed,
            report=report.model_dump(mode="json"),
            skills=report.skill_scores(),
            memory_id=memory_id,
            summary=memory.summary,
            weak_skills=memory.weak_skills,
        )
        if failures:
            await training.add_agent_events(
                session,
                tenant_id=who.tenant_id,
                session_id=session_id,
                reply_to_seq=None,
                events=[agent_row(f) for f in failures],
            )
    if not first:  # someone else scored it meanwhile: theirs is the one stored
        return await _stored_report(sessions, who, session_id), []
    product_metrics().sessions_scored.inc(1, tags=mode)
    try:
        await knowledge.remember.remote(
            tenant_id=str(who.tenant_id),
            user_id=str(who.user_id),
            memory_id=str(memory_id),
            text=f"{ctx.scenario.title}. {memory.summary}",
        )
    except Exception as exc:  # PostgreSQL has the memory; the vector only ranks it
        log.warning("session %s: memory vector not stored: %r", session_id, exc)
    return report, failures


async def _stored_report(
    sessions: async_sessionmaker[AsyncSession], who: Identity, session_id: uuid.UUID
) -> EvaluationReport:
    async with tenant_transaction(sessions, who.tenant_id) as session:
        stored = await training.evaluation_of(session, session_id=session_id)
    assert stored is not None
    return EvaluationReport.model_validate(stored.report)


async def trainee_memory(
    sessions: async_sessionmaker[AsyncSession],
    knowledge: DeploymentHandle,
    who: Identity,
    query: str,
) -> TraineeMemory | None:
    """What the coach should know about this trainee: the earlier session most like this
    one (Qdrant), and the skills that were weak in the recent ones (PostgreSQL)."""
    async with tenant_transaction(sessions, who.tenant_id) as session:
        recent = await training.recent_memories(session, user_id=who.user_id)
    if not recent:
        return None
    nearest = recent[0]
    try:
        ids = await asyncio.wait_for(
            knowledge.recall.remote(
                tenant_id=str(who.tenant_id), user_id=str(who.user_id), query=query, limit=1
            ),
            timeout=RECALL_TIMEOUT_S,
        )
        by_id = {str(m.id): m for m in recent}
        if ids and ids[0] in by_id:
            nearest = by_id[ids[0]]
        elif ids:
            async with tenant_transaction(sessions, who.tenant_id) as session:
                found = await training.memory_by_id(session, memory_id=uuid.UUID(ids[0]))
            nearest = found or nearest
    except Exception as exc:  # the newest memory will do
        log.info("memory recall failed, using the newest: %r", exc)
    weak: list[str] = []
    for memory in recent:
        weak.extend(s for s in memory.weak_skills if s not in weak)
    return TraineeMemory(summary=nearest.summary, weak_skills=weak)
