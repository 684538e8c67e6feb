"""The agents' rows: rules and rubrics they read, events and evaluations they leave behind."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import (
    AgentEvent,
    ComplianceRule,
    Rubric,
    SessionEvaluation,
    SkillScore,
    TraineeMemoryRow,
)


async def compliance_rules(session: AsyncSession) -> list[ComplianceRule]:
    return list(await session.scalars(select(ComplianceRule).order_by(ComplianceRule.slug)))


async def rubric_by_id(session: AsyncSession, *, rubric_id: uuid.UUID | None) -> Rubric | None:
    return await session.get(Rubric, rubric_id) if rubric_id is not None else None


async def add_agent_events(
    session: AsyncSession,
    *,
    tenant_id: uuid.UUID,
    session_id: uuid.UUID,
    reply_to_seq: int | None,
    events: list[tuple[str, str, dict[str, Any]]],
) -> None:
    """``events``: (agent, kind, payload) in the order they happened."""
    session.add_all(
        AgentEvent(
            tenant_id=tenant_id,
            session_id=session_id,
            reply_to_seq=reply_to_seq,
            agent=agent,
            kind=kind,
            payload=payload,
        )
        for agent, kind, payload in events
    )


async def agent_events(session: AsyncSession, *, session_id: uuid.UUID) -> list[AgentEvent]:
    return list(
        await session.scalars(
            select(AgentEvent).where(AgentEvent.session_id == session_id).order_by(AgentEvent.id)
        )
    )


async def evaluation_of(
    session: AsyncSession, *, session_id: uuid.UUID
) -> SessionEvaluation | None:
    return await session.get(SessionEvaluation, session_id)


async def store_evaluation(
    session: AsyncSession,
    *,
    tenant_id: uuid.UUID,
    user_id: uuid.UUID,
    session_id: uuid.UUID,
    rubric_slug: str,
    score: float,
    passed: bool,
    report: dict[str, Any],
    skills: dict[str, float],
    memory_id: uuid.UUID,
    summary: str,
    weak_skills: list[str],
) -> bool:
    """The evaluation, its per-skill scores and the trainee's memory of it, once per session.

    Returns False when the session was already evaluated (a concurrent or repeated end).
    """
    inserted = await session.scalar(
        insert(SessionEvaluation)
        .values(
            session_id=session_id,
            tenant_id=tenant_id,
            user_id=user_id,
            rubric_slug=rubric_slug,
            score=score,
            passed=passed,
            report=report,
        )
        .on_conflict_do_nothing(index_elements=["session_id"])
        .returning(SessionEvaluation.session_id)
    )
    if inserted is None:
        return False
    session.add_all(
        SkillScore(
            tenant_id=tenant_id, user_id=user_id, session_id=session_id, skill=skill, score=value
        )
        for skill, value in skills.items()
    )
    session.add(
        TraineeMemoryRow(
            id=memory_id,
            tenant_id=tenant_id,
            user_id=user_id,
            session_id=session_id,
            summary=summary,
            weak_skills=weak_skills,
        )
    )
    return True


async def recent_memories(
    session: AsyncSession, *, user_id: uuid.UUID, limit: int = 3
) -> list[TraineeMemoryRow]:
    return list(
        await session.scalars(
            select(TraineeMemoryRow)
            .where(TraineeMemoryRow.user_id == user_id)
            .order_by(TraineeMemoryRow.created_at.desc())
            .limit(limit)
        )
    )


async def memory_by_id(session: AsyncSession, *, memory_id: uuid.UUID) -> TraineeMemoryRow | None:
    return await session.get(TraineeMemoryRow, memory_id)
