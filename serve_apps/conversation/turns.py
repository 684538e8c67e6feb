"""One WebSocket conversation: store, acknowledge, stream the NPC reply, store it, replay.

Kept apart from FastAPI and Ray so unit tests can drive it with an in-memory socket and a
fake reply source. The order of effects is the protocol's guarantee:
trainee turn stored → ``ack`` → tokens → NPC reply stored → ``reply_done``.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

from serve_apps.conversation.protocol import (
    Ack,
    ErrorEvent,
    ReplyDone,
    StoredTurn,
    Token,
    TraineeTurn,
)
from serve_apps.knowledge.contracts import RetrievedChunk
from serve_apps.orchestrator.contracts import (
    HistoryTurn,
    NPCChunk,
    NPCReplyRequest,
    PersonaCard,
    ScenarioCard,
)

log = logging.getLogger("salesboost.conversation")


@dataclass(frozen=True)
class StoredReply:
    seq: int
    text: str
    output_tokens: int | None
    citations: list[RetrievedChunk] = field(default_factory=list)


@dataclass(frozen=True)
class TraineeTurnRecord:
    seq: int
    duplicate: bool
    reply: StoredReply | None


@dataclass(frozen=True)
class ReplayTurn:
    seq: int
    speaker: str
    text: str
    client_turn_id: str | None
    reply_to: int | None
    citations: list[RetrievedChunk] = field(default_factory=list)


class ConversationStore(Protocol):
    """Persistence of one session's turns (PostgreSQL in the product)."""

    async def store_trainee_turn(self, *, client_turn_id: str, text: str) -> TraineeTurnRecord: ...

    async def store_npc_reply(
        self,
        *,
        reply_to_seq: int,
        text: str,
        output_tokens: int | None,
        model: str | None,
        citations: list[RetrievedChunk],
    ) -> StoredReply: ...

    async def turns_after(self, *, last_seq: int) -> list[ReplayTurn]: ...


class GenerationLocks(Protocol):
    """Marks a reply as being generated, so a concurrent retry does not start a second one.

    Locks expire on their own (seconds), and the generating replica renews its lock while it
    streams: a replica that dies mid-reply blocks a retry only briefly.
    """

    renew_every_s: float

    async def acquire(self, key: str) -> bool: ...

    async def renew(self, key: str) -> None: ...

    async def release(self, key: str) -> None: ...


ReplySource = Callable[[NPCReplyRequest], AsyncIterator[NPCChunk]]
Grounder = Callable[[str], Awaitable[list[RetrievedChunk]]]
Send = Callable[[str], Awaitable[None]]


@dataclass
class Conversation:
    session_id: uuid.UUID
    tenant_id: uuid.UUID
    user_id: uuid.UUID
    persona: PersonaCard
    scenario: ScenarioCard
    history: list[HistoryTurn]
    store: ConversationStore
    locks: GenerationLocks
    reply_source: ReplySource
    send: Send
    knowledge_base: str | None = None
    # Retrieves a turn's knowledge while the turn is being stored, off the reply's critical path.
    grounder: Grounder | None = None
    # Told each stored reply's output tokens (the tenant's model-token budget).
    on_reply: Callable[[int], Awaitable[None]] | None = None
    max_tokens: int = 160
    temperature: float = 0.7
    _client_gone: bool = field(default=False, init=False)

    async def _emit(self, event) -> None:
        # A client that went away mid-reply must not stop the reply from being stored.
        if self._client_gone:
            return
        try:
            await self.send(event.model_dump_json())
        except Exception:
            self._client_gone = True
            log.info("session %s: client went away while sending", self.session_id)

    async def handle_turn(self, turn: TraineeTurn) -> None:
        grounding = (
            asyncio.ensure_future(self.grounder(turn.text))  # a Serve response is an awaitable
            if self.grounder is not None and self.knowledge_base
            else None
        )
        try:
            await self._handle_turn(turn, grounding)
        finally:
            if grounding is not None and not grounding.done():
                grounding.cancel()

    async def _handle_turn(
        self, turn: TraineeTurn, grounding: asyncio.Future[list[RetrievedChunk]] | None
    ) -> None:
        record = await self.store.store_trainee_turn(
            client_turn_id=turn.client_turn_id, text=turn.text
        )
        await self._emit(
            Ack(client_turn_id=turn.client_turn_id, seq=record.seq, duplicate=record.duplicate)
        )
        if record.reply is not None:  # a retry of a turn that was answered: no model call
            await self._emit(self._reply_done(record.seq, record.reply))
            return
        lock_key = f"{self.session_id}:{record.seq}"
        if not await self.locks.acquire(lock_key):
            await self._emit(
                ErrorEvent(
                    code="reply_in_progress",
                    message="the reply to this turn is still being generated; resume to receive it",
                    client_turn_id=turn.client_turn_id,
                )
            )
            return
        try:
            await self._generate(record.seq, turn, lock_key, grounding)
        finally:
            await self.locks.release(lock_key)

    async def _generate(
        self,
        seq: int,
        turn: TraineeTurn,
        lock_key: str,
        grounding: asyncio.Future[list[RetrievedChunk]] | None,
    ) -> None:
        chunks: list[RetrievedChunk] | None = None
        if grounding is not None:
            try:
                chunks = await grounding
            except Exception as exc:  # the orchestrator retrieves again; the reply goes on
                log.info("session %s: early retrieval failed: %r", self.session_id, exc)
        request = NPCReplyRequest(
            session_id=str(self.session_id),
            tenant_id=str(self.tenant_id),
            knowledge_base=self.knowledge_base,
            reply_to_seq=seq,
            persona=self.persona,
            scenario=self.scenario,
            history=self.history,
            trainee_text=turn.text,
            grounding=chunks,
            max_tokens=self.max_tokens,
            temperature=self.temperature,
        )
        parts: list[str] = []
        last = NPCChunk(done=True)
        renewed_at = time.monotonic()
        try:
            async for chunk in self.reply_source(request):
                if time.monotonic() - renewed_at > self.locks.renew_every_s:
                    await self.locks.renew(lock_key)
                    renewed_at = time.monotonic()
                if chunk.done:
                    last = chunk
                    continue
                parts.append(chunk.text)
                await self._emit(Token(reply_to=seq, speaker=self.persona.slug, text=chunk.text))
        except Exception as exc:
            log.warning("session %s turn %s: model failed: %r", self.session_id, seq, exc)
            await self._emit(
                ErrorEvent(
                    code="model_unavailable",
                    message="the customer could not answer just now; send the turn again to retry",
                    client_turn_id=turn.client_turn_id,
                )
            )
            return
        reply = await self.store.store_npc_reply(
            reply_to_seq=seq,
            text="".join(parts),
            output_tokens=last.output_tokens,
            model=last.model,
            citations=last.citations,
        )
        self.history.append(HistoryTurn(speaker="trainee", text=turn.text))
        self.history.append(HistoryTurn(speaker="npc", text=reply.text))
        if self.on_reply is not None and reply.output_tokens:
            try:
                await self.on_reply(reply.output_tokens)
            except Exception as exc:  # accounting must not cost the trainee the reply
                log.warning("session %s: token accounting failed: %r", self.session_id, exc)
        await self._emit(self._reply_done(seq, reply))

    def _reply_done(self, reply_to: int, reply: StoredReply) -> ReplyDone:
        return ReplyDone(
            seq=reply.seq,
            reply_to=reply_to,
            speaker=self.persona.slug,
            text=reply.text,
            output_tokens=reply.output_tokens,
            citations=reply.citations,
        )

    async def replay(self, last_seq: int) -> None:
        for turn in await self.store.turns_after(last_seq=last_seq):
            await self._emit(
                StoredTurn(
                    seq=turn.seq,
                    speaker=turn.speaker,
                    text=turn.text,
                    client_turn_id=turn.client_turn_id,
                    reply_to=turn.reply_to,
                    citations=turn.citations,
                )
            )

    async def report(self, error: ErrorEvent) -> None:
        await self._emit(error)
