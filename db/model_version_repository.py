"""The stored rows that compare the persona's model versions: each reply with the version
that produced it, its time to first token and what the agents said of it, and each session
with the version it was given, its evaluator score and its unanswered turns.

Everything is read in the caller's transaction: under row-level security, one company's rows
(the platform operator reads each company in turn, ``salesboost operator model-compare``).
The arithmetic is ``serve_apps/model_lifecycle/comparison.py``'s.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import exists, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from db.models import AgentEvent, SessionEvaluation, Speaker, TrainingSession, Turn


@dataclass(frozen=True)
class ReplyRow:
    """One stored persona reply."""

    session_id: uuid.UUID
    model: str
    first_token_ms: float | None
    reviews: int  # the reviewer's verdicts on its attempts
    rejections: int  # of which not passed (the attempt was retried or replaced)
    agent_errors: int  # agents that failed on this turn (stored ``error`` events)


@dataclass(frozen=True)
class SessionRow:
    """One training session."""

    session_id: uuid.UUID
    assigned: str | None  # the persona's version it was given when it started
    score: float | None  # the evaluator's, once it ended and was scored
    unanswered_turns: int  # trainee turns with no stored reply


async def reply_rows(session: AsyncSession, *, since: datetime) -> list[ReplyRow]:
    """The persona replies of the sessions started since ``since``."""
    review = (AgentEvent.agent == "reviewer") & (AgentEvent.kind == "review")
    rejected = review & AgentEvent.payload["passed"].as_boolean().is_(False)
    rows = await session.execute(
        select(
            Turn.session_id,
            Turn.model,
            Turn.first_token_ms,
            func.count(AgentEvent.id).filter(review),
            func.count(AgentEvent.id).filter(rejected),
            func.count(AgentEvent.id).filter(AgentEvent.kind == "error"),
        )
        .select_from(Turn)
        .join(TrainingSession, TrainingSession.id == Turn.session_id)
        .outerjoin(
            AgentEvent,
            (AgentEvent.session_id == Turn.session_id)
            & (AgentEvent.reply_to_seq == Turn.reply_to_seq),
        )
        .where(
            Turn.speaker == Speaker.npc,
            Turn.model.is_not(None),
            TrainingSession.created_at >= since,
        )
        .group_by(Turn.id)
    )
    return [
        ReplyRow(
            session_id=session_id,
            model=model or "",  # never empty: the query keeps named versions only
            first_token_ms=first_token_ms,
            reviews=reviews,
            rejections=rejections,
            agent_errors=agent_errors,
        )
        for session_id, model, first_token_ms, reviews, rejections, agent_errors in rows
    ]


async def session_rows(session: AsyncSession, *, since: datetime) -> list[SessionRow]:
    """The sessions started since ``since``."""
    trainee, reply = aliased(Turn), aliased(Turn)
    unanswered = (
        select(func.count())
        .select_from(trainee)
        .where(
            trainee.session_id == TrainingSession.id,
            trainee.speaker == Speaker.trainee,
            ~exists().where(
                reply.session_id == trainee.session_id, reply.reply_to_seq == trainee.seq
            ),
        )
        .correlate(TrainingSession)
        .scalar_subquery()
    )
    rows = await session.execute(
        select(TrainingSession.id, TrainingSession.npc_model, SessionEvaluation.score, unanswered)
        .outerjoin(SessionEvaluation, SessionEvaluation.session_id == TrainingSession.id)
        .where(TrainingSession.created_at >= since)
    )
    return [
        SessionRow(session_id=sid, assigned=assigned, score=score, unanswered_turns=count)
        for sid, assigned, score, count in rows
    ]
