"""Repository functions: the SQL the product runs, keyword-only, inside a tenant transaction."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.engine import tenant_transaction
from db.models import (
    Persona,
    Scenario,
    SessionMode,
    SessionStatus,
    Speaker,
    Tenant,
    TrainingSession,
    Turn,
    User,
)


class NotFoundError(LookupError):
    """The row does not exist for this tenant (or at all: callers must not tell the two apart)."""


@dataclass(frozen=True)
class StoredTraineeTurn:
    seq: int
    duplicate: bool
    reply: Turn | None  # the stored NPC reply to this turn, when there is one


@dataclass(frozen=True)
class SessionContext:
    session: TrainingSession
    scenario: Scenario
    personas: list[Persona]
    turns: list[Turn]


async def tenant_id_for_slug(sessions: async_sessionmaker[AsyncSession], *, slug: str) -> uuid.UUID:
    async with sessions() as session:
        tenant_id = await session.scalar(select(Tenant.id).where(Tenant.slug == slug))
    if tenant_id is None:
        raise NotFoundError(f"tenant {slug!r}")
    return tenant_id


async def user_by_email(session: AsyncSession, *, email: str) -> User:
    user = await session.scalar(select(User).where(User.email == email))
    if user is None:
        raise NotFoundError(f"user {email!r}")
    return user


async def user_by_id(session: AsyncSession, *, user_id: uuid.UUID) -> User:
    user = await session.get(User, user_id)
    if user is None:
        raise NotFoundError(f"user {user_id}")
    return user


async def list_scenarios(session: AsyncSession) -> list[Scenario]:
    return list(await session.scalars(select(Scenario).order_by(Scenario.title)))


async def scenario_by_key(session: AsyncSession, *, key: str) -> Scenario:
    """A scenario by id or by slug."""
    try:
        condition = Scenario.id == uuid.UUID(key)
    except ValueError:
        condition = Scenario.slug == key
    scenario = await session.scalar(select(Scenario).where(condition))
    if scenario is None:
        raise NotFoundError(f"scenario {key!r}")
    return scenario


async def create_training_session(
    session: AsyncSession,
    *,
    tenant_id: uuid.UUID,
    user_id: uuid.UUID,
    scenario_id: uuid.UUID,
    mode: SessionMode,
    course_id: uuid.UUID | None = None,
    session_id: uuid.UUID | None = None,
    npc_model: str | None = None,
) -> TrainingSession:
    """``session_id`` when the caller drew something from it already (the persona's model
    version, ``npc_model``); a fresh one otherwise."""
    training = TrainingSession(
        id=session_id or uuid.uuid4(),
        tenant_id=tenant_id,
        user_id=user_id,
        scenario_id=scenario_id,
        mode=mode,
        course_id=course_id,
        npc_model=npc_model,
    )
    session.add(training)
    await session.flush()
    return training


async def get_training_session(
    session: AsyncSession, *, session_id: uuid.UUID, user_id: uuid.UUID | None = None
) -> TrainingSession:
    query = select(TrainingSession).where(TrainingSession.id == session_id)
    if user_id is not None:
        query = query.where(TrainingSession.user_id == user_id)
    training = await session.scalar(query)
    if training is None:
        raise NotFoundError(f"training session {session_id}")
    return training


async def load_session_context(
    session: AsyncSession, *, session_id: uuid.UUID, user_id: uuid.UUID | None = None
) -> SessionContext:
    training = await get_training_session(session, session_id=session_id, user_id=user_id)
    scenario = await session.scalar(select(Scenario).where(Scenario.id == training.scenario_id))
    assert scenario is not None  # foreign key
    personas = [link.persona for link in scenario.personas]
    turns = await turns_after(session, session_id=session_id, after_seq=0)
    return SessionContext(session=training, scenario=scenario, personas=personas, turns=turns)


async def turns_after(
    session: AsyncSession, *, session_id: uuid.UUID, after_seq: int
) -> list[Turn]:
    rows = await session.scalars(
        select(Turn).where(Turn.session_id == session_id, Turn.seq > after_seq).order_by(Turn.seq)
    )
    return list(rows)


async def _next_seq(session: AsyncSession, session_id: uuid.UUID) -> int:
    seq = await session.scalar(
        update(TrainingSession)
        .where(TrainingSession.id == session_id, TrainingSession.status == SessionStatus.active)
        .values(last_seq=TrainingSession.last_seq + 1)
        .returning(TrainingSession.last_seq)
    )
    if seq is None:
        raise NotFoundError(f"active training session {session_id}")
    return seq


async def _find_trainee_turn(
    session: AsyncSession, session_id: uuid.UUID, client_turn_id: str
) -> StoredTraineeTurn | None:
    seq = await session.scalar(
        select(Turn.seq).where(Turn.session_id == session_id, Turn.client_turn_id == client_turn_id)
    )
    if seq is None:
        return None
    reply = await session.scalar(
        select(Turn).where(Turn.session_id == session_id, Turn.reply_to_seq == seq)
    )
    return StoredTraineeTurn(seq=seq, duplicate=True, reply=reply)


async def store_trainee_turn(
    sessions: async_sessionmaker[AsyncSession],
    *,
    tenant_id: uuid.UUID,
    session_id: uuid.UUID,
    client_turn_id: str,
    text: str,
) -> StoredTraineeTurn:
    """Store a trainee turn once per client turn id; a retry returns what was stored."""
    try:
        async with tenant_transaction(sessions, tenant_id) as session:
            existing = await _find_trainee_turn(session, session_id, client_turn_id)
            if existing is not None:
                return existing
            seq = await _next_seq(session, session_id)
            session.add(
                Turn(
                    tenant_id=tenant_id,
                    session_id=session_id,
                    seq=seq,
                    speaker=Speaker.trainee,
                    client_turn_id=client_turn_id,
                    content=text,
                )
            )
        return StoredTraineeTurn(seq=seq, duplicate=False, reply=None)
    except IntegrityError:
        # A concurrent retry of the same client turn id won the insert: return its row.
        async with tenant_transaction(sessions, tenant_id) as session:
            existing = await _find_trainee_turn(session, session_id, client_turn_id)
        if existing is None:
            raise
        return existing


async def store_npc_turn(
    sessions: async_sessionmaker[AsyncSession],
    *,
    tenant_id: uuid.UUID,
    session_id: uuid.UUID,
    reply_to_seq: int,
    persona_id: uuid.UUID | None,
    text: str,
    output_tokens: int | None,
    model: str | None,
    citations: list[dict] | None = None,
    first_token_ms: float | None = None,
) -> Turn:
    """Store the NPC reply to a trainee turn; a second reply to the same turn returns the first."""
    try:
        async with tenant_transaction(sessions, tenant_id) as session:
            seq = await _next_seq(session, session_id)
            turn = Turn(
                tenant_id=tenant_id,
                session_id=session_id,
                seq=seq,
                speaker=Speaker.npc,
                persona_id=persona_id,
                reply_to_seq=reply_to_seq,
                content=text,
                output_tokens=output_tokens,
                model=model,
                citations=citations,
                first_token_ms=first_token_ms,
            )
            session.add(turn)
        return turn
    except IntegrityError:
        async with tenant_transaction(sessions, tenant_id) as session:
            stored = await session.scalar(
                select(Turn).where(Turn.session_id == session_id, Turn.reply_to_seq == reply_to_seq)
            )
        if stored is None:
            raise
        return stored


async def end_training_session(session: AsyncSession, *, session_id: uuid.UUID) -> bool:
    """End an active session; False when it had ended already."""
    result = await session.execute(
        update(TrainingSession)
        .where(TrainingSession.id == session_id, TrainingSession.status == SessionStatus.active)
        .values(status=SessionStatus.ended, ended_at=func.now())
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def persona_slugs(
    session: AsyncSession, *, ids: set[uuid.UUID | None]
) -> dict[uuid.UUID, str]:
    wanted = {i for i in ids if i is not None}
    if not wanted:
        return {}
    rows = await session.execute(select(Persona.id, Persona.slug).where(Persona.id.in_(wanted)))
    return {row.id: row.slug for row in rows}
