"""The conversation's persistence (PostgreSQL) and generation locks (Redis) for one session."""

from __future__ import annotations

import uuid

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db import repositories as repo
from db import training_repository as training
from db.engine import tenant_transaction
from db.models import Turn
from db.transcript import citations_of, stored_turn
from serve_apps.contracts.knowledge import RetrievedChunk
from serve_apps.contracts.wire import (
    AgentEvent,
    ComplianceFinding,
    ErrorEvent,
    Hint,
    Review,
    StoredTurn,
    TurnTaking,
)
from serve_apps.conversation.turns import StoredReply, TraineeTurnRecord

GENERATION_LOCK_TTL_S = 10


def _reply(turn: Turn, speaker: str | None = None) -> StoredReply:
    return StoredReply(
        seq=turn.seq,
        text=turn.content,
        output_tokens=turn.output_tokens,
        citations=citations_of(turn),
        speaker=speaker,
    )


def agent_row(event: AgentEvent | ErrorEvent) -> tuple[str, str, dict]:
    """(agent, kind, payload) of an event, as ``agent_events`` stores it."""
    payload = event.model_dump(mode="json")
    match event:
        case Hint():
            return "coach", event.kind, payload
        case ComplianceFinding():
            return "compliance", "finding", payload
        case Review():
            return "reviewer", "review", payload
        case TurnTaking():
            return "director", "turn_taking", payload
        case _:
            return event.agent or "orchestrator", "error", payload


class PostgresConversationStore:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        tenant_id: uuid.UUID,
        session_id: uuid.UUID,
        persona_ids: dict[str, uuid.UUID],
    ) -> None:
        self._sessions = sessions
        self._tenant_id = tenant_id
        self._session_id = session_id
        self._persona_ids = dict(persona_ids)  # slug → id: who said an NPC turn
        # Keyed by None too: a turn without a persona has no speaker slug.
        self._slugs: dict[uuid.UUID | None, str] = {v: k for k, v in persona_ids.items()}

    def add_personas(self, persona_ids: dict[str, uuid.UUID]) -> None:
        """Personas the scenario was given while the conversation runs, who may speak next."""
        self._persona_ids.update(persona_ids)
        self._slugs.update({v: k for k, v in persona_ids.items()})

    async def store_trainee_turn(self, *, client_turn_id: str, text: str) -> TraineeTurnRecord:
        stored = await repo.store_trainee_turn(
            self._sessions,
            tenant_id=self._tenant_id,
            session_id=self._session_id,
            client_turn_id=client_turn_id,
            text=text,
        )
        reply = (
            _reply(stored.reply, self._slugs.get(stored.reply.persona_id))
            if stored.reply is not None
            else None
        )
        return TraineeTurnRecord(seq=stored.seq, duplicate=stored.duplicate, reply=reply)

    async def store_npc_reply(
        self,
        *,
        reply_to_seq: int,
        text: str,
        output_tokens: int | None,
        model: str | None,
        citations: list[RetrievedChunk],
        speaker: str,
        first_token_ms: float | None = None,
    ) -> StoredReply:
        turn = await repo.store_npc_turn(
            self._sessions,
            tenant_id=self._tenant_id,
            session_id=self._session_id,
            reply_to_seq=reply_to_seq,
            persona_id=self._persona_ids.get(speaker),
            text=text,
            output_tokens=output_tokens,
            model=model,
            citations=[c.model_dump() for c in citations] or None,
            first_token_ms=first_token_ms,
        )
        return _reply(turn, self._slugs.get(turn.persona_id))

    async def store_agent_events(
        self, *, reply_to_seq: int | None, events: list[AgentEvent | ErrorEvent]
    ) -> None:
        async with tenant_transaction(self._sessions, self._tenant_id) as session:
            await training.add_agent_events(
                session,
                tenant_id=self._tenant_id,
                session_id=self._session_id,
                reply_to_seq=reply_to_seq,
                events=[agent_row(e) for e in events],
            )

    async def turns_after(self, *, last_seq: int) -> list[StoredTurn]:
        async with tenant_transaction(self._sessions, self._tenant_id) as session:
            turns = await repo.turns_after(session, session_id=self._session_id, after_seq=last_seq)
            speakers = await repo.persona_slugs(session, ids={t.persona_id for t in turns})
        return [stored_turn(t, speakers) for t in turns]


class RedisGenerationLocks:
    """One key per reply being generated, holding this holder's token: renewing and releasing
    touch the key only while it is still this holder's (a lock that expired and was taken by a
    retry elsewhere is left to that retry)."""

    def __init__(
        self,
        redis: Redis,
        *,
        ttl_s: float = GENERATION_LOCK_TTL_S,
        prefix: str = "salesboost:generating:",
    ) -> None:
        self._redis = redis
        self._ttl_ms = max(1, int(ttl_s * 1000))
        self.renew_every_s = ttl_s / 3
        self._prefix = prefix
        self._tokens: dict[str, str] = {}

    async def acquire(self, key: str) -> bool:
        token = uuid.uuid4().hex
        if await self._redis.set(self._prefix + key, token, nx=True, px=self._ttl_ms):
            self._tokens[key] = token
            return True
        return False

    async def renew(self, key: str) -> bool:
        token = self._tokens.get(key)
        if token is None:
            return False
        return bool(await self._redis.eval(_RENEW, 1, self._prefix + key, token, self._ttl_ms))

    async def release(self, key: str) -> None:
        token = self._tokens.pop(key, None)
        if token is not None:
            await self._redis.eval(_RELEASE, 1, self._prefix + key, token)


_RENEW = """
if redis.call('get', KEYS[1]) == ARGV[1] then
    return redis.call('pexpire', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
    return redis.call('del', KEYS[1])
end
return 0
"""
