"""The stored rows that compare the persona's model versions: each reply with the version
that produced it, its time to first token and what the agents said of it, and each session
with the version it was given, its evaluator score and its unanswered turns; and the stored
sessions a replay runs again against a candidate (``stored_sessions``).

Everything is read in the caller's transaction: under row-level security, one company's rows
(the platform operator reads each company in turn, ``salesboost operator model-compare``).
The arithmetic is ``serve_apps/model_lifecycle/comparison.py``'s and ``replay.py``'s.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Select, exists, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from db import training_repository as training
from db.models import (
    AgentEvent,
    Rubric,
    Scenario,
    SessionEvaluation,
    SessionStatus,
    Speaker,
    TrainingSession,
    Turn,
)
from serve_apps.contracts.replay import MAX_REPLAY_TURNS, StoredExchange, StoredSession
from serve_apps.contracts.specs import ComplianceRuleSpec, RubricSpec
from serve_apps.contracts.turn import PersonaCard, ScenarioCard


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


# The sessions a replay runs again, and what it reads of them.


def replayable_sessions(tenant_id: uuid.UUID, limit: int) -> Select[TrainingSession]:
    """The company's ``limit`` most recent sessions with a trainee turn that ended or have a
    stored reply, newest first (by when they ended, else when they started). The company is
    named here as well as by row-level security: the caller's transaction acts as it."""
    said, replied = aliased(Turn), aliased(Turn)
    has_trainee_turn = exists().where(
        said.session_id == TrainingSession.id, said.speaker == Speaker.trainee
    )
    has_reply = exists().where(
        replied.session_id == TrainingSession.id, replied.speaker == Speaker.npc
    )
    return (
        select(TrainingSession)
        .where(
            TrainingSession.tenant_id == tenant_id,
            has_trainee_turn,
            or_(TrainingSession.status == SessionStatus.ended, has_reply),
        )
        .order_by(
            func.coalesce(TrainingSession.ended_at, TrainingSession.created_at).desc(),
            TrainingSession.id,
        )
        .limit(limit)
    )


def exchanges_of(
    turns: list[Turn],
    verdicts: dict[int, tuple[int, int]],
    persona_slugs: dict[uuid.UUID, str],
    *,
    max_turns: int = MAX_REPLAY_TURNS,
) -> tuple[list[StoredExchange], bool]:
    """One session's trainee turns in order, each with the reply stored for it and the
    reviewer's (verdicts, rejections) on that reply; whether turns were left past
    ``max_turns``."""
    replies = {t.reply_to_seq: t for t in turns if t.speaker == Speaker.npc and t.reply_to_seq}
    trainee = sorted((t for t in turns if t.speaker == Speaker.trainee), key=lambda t: t.seq)
    exchanges = []
    for turn in trainee[:max_turns]:
        reply = replies.get(turn.seq)
        reviews, rejections = verdicts.get(turn.seq, (0, 0))
        exchanges.append(
            StoredExchange(
                seq=turn.seq,
                trainee_text=turn.content,
                reply=reply.content if reply else None,
                speaker=persona_slugs.get(reply.persona_id) if reply and reply.persona_id else None,
                model=reply.model if reply else None,
                first_token_ms=reply.first_token_ms if reply else None,
                output_tokens=reply.output_tokens if reply else None,
                reviews=reviews,
                rejections=rejections,
            )
        )
    return exchanges, len(trainee) > max_turns


async def stored_sessions(
    session: AsyncSession, *, tenant_id: uuid.UUID, limit: int
) -> list[StoredSession]:
    """The sessions a replay of ``limit`` runs again (``replayable_sessions``), each with its
    turns, the reviewer's verdicts on its replies, its recorded score, and the training
    content as it is now; read only, in the caller's transaction."""
    found = list(await session.scalars(replayable_sessions(tenant_id, limit)))
    if not found:
        return []
    ids = [s.id for s in found]
    turns: dict[uuid.UUID, list[Turn]] = {i: [] for i in ids}
    for turn in await session.scalars(
        select(Turn).where(Turn.session_id.in_(ids)).order_by(Turn.session_id, Turn.seq)
    ):
        turns[turn.session_id].append(turn)
    review = (AgentEvent.agent == "reviewer") & (AgentEvent.kind == "review")
    rejected = review & AgentEvent.payload["passed"].as_boolean().is_(False)
    verdicts: dict[uuid.UUID, dict[int, tuple[int, int]]] = {i: {} for i in ids}
    for session_id, seq, reviews, rejections in await session.execute(
        select(
            AgentEvent.session_id,
            AgentEvent.reply_to_seq,
            func.count().filter(review),
            func.count().filter(rejected),
        )
        .where(AgentEvent.session_id.in_(ids), AgentEvent.reply_to_seq.is_not(None))
        .group_by(AgentEvent.session_id, AgentEvent.reply_to_seq)
    ):
        if seq is not None:  # the query keeps the verdicts on replies only
            verdicts[session_id][seq] = (reviews, rejections)
    scores = dict(
        (
            await session.execute(
                select(SessionEvaluation.session_id, SessionEvaluation.score).where(
                    SessionEvaluation.session_id.in_(ids)
                )
            )
        ).all()
    )
    scenarios = {
        s.id: s
        for s in await session.scalars(
            select(Scenario).where(Scenario.id.in_({s.scenario_id for s in found}))
        )
    }
    rules = [
        ComplianceRuleSpec.model_validate(r, from_attributes=True)
        for r in await training.compliance_rules(session)
    ]
    rubrics: dict[uuid.UUID, RubricSpec | None] = {}  # read once per rubric
    stored = []
    for row in found:
        scenario = scenarios[row.scenario_id]
        cast = [link.persona for link in scenario.personas]
        if not cast:  # a scenario whose personas were all removed: nobody to answer
            continue
        conversation = row.mode.value == "conversation"  # the persona alone: no rules, no score
        rubric = None
        if scenario.rubric_id is not None and not conversation:
            if scenario.rubric_id not in rubrics:
                rubrics[scenario.rubric_id] = _rubric_spec(
                    await training.rubric_by_id(session, rubric_id=scenario.rubric_id)
                )
            rubric = rubrics[scenario.rubric_id]
        cards = [PersonaCard.model_validate(p, from_attributes=True) for p in cast]
        exchanges, truncated = exchanges_of(
            turns[row.id], verdicts[row.id], {p.id: p.slug for p in cast}
        )
        stored.append(
            StoredSession(
                session_id=str(row.id),
                tenant_id=str(row.tenant_id),
                mode=row.mode.value,
                started_at=row.created_at,
                ended=row.status == SessionStatus.ended,
                assigned_model=row.npc_model,
                persona=cards[0],
                committee=cards,
                scenario=ScenarioCard.model_validate(scenario, from_attributes=True),
                compliance_rules=[] if conversation else rules,
                knowledge_base=scenario.knowledge_base,
                customer_knowledge_base=scenario.customer_knowledge_base,
                vendor_website_knowledge_base=scenario.vendor_website_knowledge_base,
                rubric=rubric,
                recorded_score=scores.get(row.id),
                exchanges=exchanges,
                truncated=truncated,
            )
        )
    return stored


def _rubric_spec(rubric: Rubric | None) -> RubricSpec | None:
    if rubric is None:
        return None
    return RubricSpec(
        slug=rubric.slug, name=rubric.name, pass_score=rubric.pass_score, criteria=rubric.criteria
    )
