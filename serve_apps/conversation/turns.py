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

from opentelemetry import trace
from pydantic import BaseModel

from serve_apps.contracts.knowledge import RetrievedChunk
from serve_apps.contracts.models import ModelRoute
from serve_apps.contracts.specs import ComplianceRuleSpec, TraineeMemory
from serve_apps.contracts.turn import (
    HistoryTurn,
    NPCChunk,
    PersonaCard,
    PersonaPapers,
    ScenarioCard,
    SessionModeName,
    TurnRequest,
)
from serve_apps.contracts.wire import (
    Ack,
    AgentEvent,
    ErrorEvent,
    ReplyDone,
    Review,
    StoredTurn,
    Token,
    TraineeTurn,
    TurnTiming,
    for_the_trainee,
)
from serve_apps.telemetry import tracing
from serve_apps.telemetry.logs import log_context
from serve_apps.telemetry.metrics import product_metrics

log = logging.getLogger("salesboost.conversation")


@dataclass(frozen=True)
class StoredReply:
    seq: int
    text: str
    output_tokens: int | None
    citations: list[RetrievedChunk] = field(default_factory=list)
    speaker: str | None = None  # the persona's slug


@dataclass(frozen=True)
class TraineeTurnRecord:
    seq: int
    duplicate: bool
    reply: StoredReply | None


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
        speaker: str,
        first_token_ms: float | None = None,
    ) -> StoredReply: ...

    async def store_agent_events(
        self, *, reply_to_seq: int | None, events: list[AgentEvent | ErrorEvent]
    ) -> None: ...

    async def turns_after(self, *, last_seq: int) -> list[StoredTurn]: ...


class GenerationLocks(Protocol):
    """Marks a reply as being generated, so a concurrent retry does not start a second one.

    Locks expire on their own (seconds), and the generating replica renews its lock every
    ``renew_every_s`` for as long as the reply lasts, waiting for its first token included: a
    replica that dies mid-reply blocks a retry only briefly.
    """

    renew_every_s: float

    async def acquire(self, key: str) -> bool: ...

    async def renew(self, key: str) -> bool | None:
        """False when the lock is no longer this holder's."""
        ...

    async def release(self, key: str) -> None: ...


class TurnClock:
    """Milliseconds since a trainee turn arrived, at each step of its reply."""

    def __init__(self) -> None:
        self._arrived = time.perf_counter()
        self._marks: dict[str, float] = {}

    def mark(self, step: str) -> None:
        """The first time only: a retried attempt's first token is not the reply's."""
        if step not in self._marks:
            self._marks[step] = round((time.perf_counter() - self._arrived) * 1000, 1)

    def ms(self, step: str) -> float | None:
        return self._marks.get(step)

    def timing(self) -> TurnTiming:
        return TurnTiming(
            stored_ms=self._marks["stored"],
            model_called_ms=self._marks["model_called"],
            first_token_ms=self._marks.get("first_token"),
            reply_stored_ms=self._marks["reply_stored"],
        )


@dataclass(frozen=True)
class TurnContent:
    """The training content a turn's prompt is built from, as it is now: read again for
    each turn, so that an edit made while a conversation runs reaches its next turn."""

    persona: PersonaCard  # the lead
    committee: list[PersonaCard]
    scenario: ScenarioCard
    compliance_rules: list[ComplianceRuleSpec]


ReplySource = Callable[[TurnRequest], AsyncIterator[NPCChunk | AgentEvent | ErrorEvent]]
PaperReader = Callable[[str], Awaitable[PersonaPapers]]
ContentSource = Callable[[], Awaitable[TurnContent]]
# The versions that answer this session's turn now: the persona's and the judge's.
ModelRoutes = tuple[ModelRoute | None, ModelRoute | None]
ModelSource = Callable[[], Awaitable[ModelRoutes]]
# The persona's papers for a turn, and the content as it is now (None: keep the last).
TurnReading = tuple[PersonaPapers, TurnContent | None, ModelRoutes]
Send = Callable[[str], Awaitable[None]]
Publish = Callable[[str], Awaitable[None]]


@dataclass
class Conversation:
    session_id: uuid.UUID
    tenant_id: uuid.UUID
    user_id: uuid.UUID
    persona: PersonaCard  # the lead
    scenario: ScenarioCard
    history: list[HistoryTurn]
    store: ConversationStore
    locks: GenerationLocks
    reply_source: ReplySource
    send: Send
    # The seller's knowledge base: the orchestrator reads it for the coach and the claims
    # check, after the persona's first token.
    knowledge_base: str | None = None
    # Retrieves what the persona reads for a turn (its own papers, the vendor's website).
    paper_reader: PaperReader | None = None
    # Told each stored reply's output tokens (the tenant's model-token budget).
    on_reply: Callable[[int], Awaitable[None]] | None = None
    max_tokens: int = 160
    temperature: float = 0.3
    committee: list[PersonaCard] = field(default_factory=list)
    mode: SessionModeName = "conversation"
    compliance_rules: list[ComplianceRuleSpec] = field(default_factory=list)
    memory: TraineeMemory | None = None
    # Hands a reply stored after its client went away to the session's live sockets.
    publish: Publish | None = None
    # Reads the training content again for each turn, beside storing it (None: the content
    # given here stays for the conversation's life).
    content_source: ContentSource | None = None
    # Which model versions answer, read for each turn (a swap moves the next turn).
    model_source: ModelSource | None = None
    _client_gone: bool = field(default=False, init=False)

    def client_left(self) -> None:
        """The socket closed: what is generating goes on, stored, and is published."""
        self._client_gone = True

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
        """Answer one turn; its spans go under the current one (the gateway's turn span)."""
        clock = TurnClock()
        reading = asyncio.ensure_future(self._read(turn.text))  # while the turn is stored
        try:
            await self._handle_turn(turn, reading, clock)
        finally:
            if not reading.done():
                reading.cancel()

    def _count(self, outcome: str, clock: TurnClock) -> None:
        """The turn in the product's metrics and in one log line: its outcome, and the times
        the trainee saw."""
        log.info(
            "turn answered",
            extra={
                "outcome": outcome,
                "first_token_ms": clock.ms("first_token"),
                "reply_stored_ms": clock.ms("reply_stored"),
            },
        )
        metrics = product_metrics()
        tags: dict[str, str] = {"mode": self.mode}
        metrics.turns.inc(1, tags={"mode": self.mode, "outcome": outcome})
        if (first_token := clock.ms("first_token")) is not None:
            metrics.turn_ttft.observe(first_token / 1000, tags=tags)
        if (done := clock.ms("reply_stored")) is not None:
            metrics.turn_duration.observe(done / 1000, tags=tags)

    async def _read(self, text: str) -> TurnReading:
        """The persona's papers and the training content for a turn, at once; papers that
        fail or are not configured are empty (the reply goes on, less grounded), content that
        fails is None (the turn keeps the content it had)."""

        async def papers() -> PersonaPapers:
            if self.paper_reader is None:
                return PersonaPapers()
            with tracing.span("retrieve.persona_papers"):
                return await self.paper_reader(text)

        async def content() -> TurnContent | None:
            if self.content_source is None:
                return None
            with tracing.span("content.read"):
                return await self.content_source()

        async def models() -> ModelRoutes:
            return await self.model_source() if self.model_source else (None, None)

        read, now, routes = await asyncio.gather(
            papers(), content(), models(), return_exceptions=True
        )
        if isinstance(read, BaseException):
            log.warning("session %s: retrieval failed: %r", self.session_id, read)
        if isinstance(now, BaseException):
            log.warning("session %s: content not read again: %r", self.session_id, now)
        if isinstance(routes, BaseException):  # the configured versions answer
            log.warning("session %s: model routing not read: %r", self.session_id, routes)
        return (
            read if isinstance(read, PersonaPapers) else PersonaPapers(),
            now if isinstance(now, TurnContent) else None,
            routes if isinstance(routes, tuple) else (None, None),
        )

    def _take(self, content: TurnContent) -> None:
        """The content as it is now, for this turn and the ones after it."""
        if content != TurnContent(
            self.persona, self.committee, self.scenario, self.compliance_rules
        ):
            log.info("session %s: the training content changed", self.session_id)
        self.persona = content.persona
        self.committee = content.committee
        self.scenario = content.scenario
        self.compliance_rules = content.compliance_rules

    async def _handle_turn(
        self,
        turn: TraineeTurn,
        reading: asyncio.Future[TurnReading],
        clock: TurnClock,
    ) -> None:
        with tracing.span("store_turn"):
            record = await self.store.store_trainee_turn(
                client_turn_id=turn.client_turn_id, text=turn.text
            )
        clock.mark("stored")
        trace.get_current_span().set_attribute(tracing.TURN_SEQ, record.seq)
        with log_context(turn_seq=record.seq):
            outcome = await self._answer_stored(turn, record, reading, clock)
            self._count(outcome, clock)

    async def _answer_stored(
        self,
        turn: TraineeTurn,
        record: TraineeTurnRecord,
        reading: asyncio.Future[TurnReading],
        clock: TurnClock,
    ) -> str:
        """The turn's outcome: replied, replaced, resent, in_progress or model_unavailable."""
        await self._emit(
            Ack(client_turn_id=turn.client_turn_id, seq=record.seq, duplicate=record.duplicate)
        )
        if record.reply is not None:  # a retry of a turn that was answered: no model call
            await self._emit(self._reply_done(record.seq, record.reply))
            return "resent"
        lock_key = f"{self.session_id}:{record.seq}"
        if not await self.locks.acquire(lock_key):
            await self._emit(
                ErrorEvent(
                    code="reply_in_progress",
                    message="the reply to this turn is still being generated; resume to receive it",
                    client_turn_id=turn.client_turn_id,
                )
            )
            return "in_progress"
        renewal = asyncio.create_task(self._keep_lock(lock_key))
        try:
            return await self._generate(record.seq, turn, reading, clock)
        finally:
            renewal.cancel()
            try:
                await self.locks.release(lock_key)
            except Exception as exc:  # the reply is out; the lock lapses on its own
                log.warning(
                    "session %s: generation lock %s not released: %r",
                    self.session_id,
                    lock_key,
                    exc,
                )

    async def _keep_lock(self, key: str) -> None:
        """Renew the generation lock for as long as the reply lasts, whether or not the model
        has said anything yet (a turn can wait in the engine's queue longer than the lock
        lives)."""
        while True:
            await asyncio.sleep(self.locks.renew_every_s)
            try:
                with tracing.untraced():  # a beat every few hundred ms: noise in the turn's trace
                    renewed = await self.locks.renew(key)
                if renewed is False:
                    log.warning("session %s: generation lock %s was lost", self.session_id, key)
                    return
            except Exception as exc:  # Redis away for a moment: try again at the next beat
                log.warning("session %s: generation lock not renewed: %r", self.session_id, exc)

    async def _generate(
        self,
        seq: int,
        turn: TraineeTurn,
        reading: asyncio.Future[TurnReading],
        clock: TurnClock,
    ) -> str:
        papers, content, (npc_model, judge_model) = await reading
        if content is not None:
            self._take(content)
        request = TurnRequest(
            session_id=str(self.session_id),
            tenant_id=str(self.tenant_id),
            knowledge_base=self.knowledge_base,
            reply_to_seq=seq,
            persona=self.persona,
            scenario=self.scenario,
            history=self.history,
            trainee_text=turn.text,
            persona_papers=papers,
            max_tokens=self.max_tokens,
            temperature=self.temperature,
            committee=self.committee,
            mode=self.mode,
            compliance_rules=self.compliance_rules,
            npc_model=npc_model,
            judge_model=judge_model,
            memory=self.memory if not self.history else None,
        )
        clock.mark("model_called")
        # Agent events are sent as they come and stored in one transaction with the reply's
        # turn done; those that come after the reply are stored when the stream ends.
        agent_events: list[AgentEvent | ErrorEvent] = []
        reply: StoredReply | None = None
        replaced = False
        # The model's span is the current one only while the stream is asked for (the handle
        # call carries it to the orchestrator); storing the reply is its sibling.
        model_span = tracing.start_span("model.stream_turn", {"paper_chunks": len(papers.chunks())})
        try:
            with trace.use_span(model_span):
                stream = self.reply_source(request)
            async for event in stream:
                if not isinstance(event, NPCChunk):
                    agent_events.append(event)
                    replaced |= isinstance(event, Review) and event.action == "replaced"
                    if for_the_trainee(event):
                        await self._emit(event)
                elif not event.done:
                    if clock.ms("first_token") is None:
                        clock.mark("first_token")
                        model_span.add_event("first_token")
                        asked, answered = clock.ms("model_called"), clock.ms("first_token")
                        if asked is not None and answered is not None:
                            model_span.set_attribute("ttft_ms", round(answered - asked, 1))
                    await self._emit(
                        Token(
                            reply_to=seq,
                            speaker=event.speaker or self.persona.slug,
                            text=event.text,
                            attempt=event.attempt,
                        )
                    )
                else:
                    tracing.set_attributes(
                        model_span,
                        {
                            "output_tokens": event.output_tokens,
                            "finish_reason": event.finish_reason,
                        },
                    )
                    model_span.end()
                    reply = await self._finish_reply(seq, turn, event, agent_events, clock)
                    agent_events = []
        except Exception as exc:
            tracing.mark_error(model_span, "model_unavailable" if reply is None else "agents")
            if reply is None:
                log.warning("session %s turn %s: model failed: %r", self.session_id, seq, exc)
                await self._emit(
                    ErrorEvent(
                        code="model_unavailable",
                        message="the customer could not answer just now; send the turn again "
                        "to retry",
                        client_turn_id=turn.client_turn_id,
                    )
                )
                return "model_unavailable"
            log.warning(
                "session %s turn %s: agents failed after the reply: %r", self.session_id, seq, exc
            )
        finally:
            if model_span.is_recording():  # not ended with its reply (OTel warns on a 2nd end)
                model_span.end()
        if agent_events:
            await self._store_agent_events(seq, agent_events)
        if reply is None:  # the stream ended without a reply
            return "model_unavailable"
        return "replaced" if replaced else "replied"

    async def _finish_reply(
        self,
        seq: int,
        turn: TraineeTurn,
        done: NPCChunk,
        agent_events: list[AgentEvent | ErrorEvent],
        clock: TurnClock,
    ) -> StoredReply:
        speaker = done.speaker or self.persona.slug
        with tracing.span("store_reply", {"agent_events": len(agent_events)}):
            reply = await self.store.store_npc_reply(
                reply_to_seq=seq,
                text=done.final_text or "",
                output_tokens=done.output_tokens,
                model=done.model,
                citations=done.citations,
                speaker=speaker,
                # Kept so that model versions can be compared on it (salesboost models compare).
                first_token_ms=clock.ms("first_token"),
            )
            await self._store_agent_events(seq, agent_events)
        clock.mark("reply_stored")
        self.history.append(HistoryTurn(speaker="trainee", text=turn.text))
        self.history.append(HistoryTurn(speaker="npc", text=reply.text, persona=speaker))
        done_event = self._reply_done(seq, reply, clock.timing())
        if not self._client_gone:
            await self._emit(done_event)
        if self._client_gone:  # gone before, or found gone by this send
            await self._publish(done_event)
        # Accounted after ``reply_done``, so that the trainee's next frame is already on its way
        # (it is read when this turn is done). A turn sent at once may pass the budget check
        # before these tokens count; the one after it does not.
        if self.on_reply is not None and reply.output_tokens:
            try:
                await self.on_reply(reply.output_tokens)
            except Exception as exc:  # accounting must not cost the trainee the reply
                log.warning("session %s: token accounting failed: %r", self.session_id, exc)
        return reply

    async def _publish(self, event: ReplyDone) -> None:
        if self.publish is None:
            return
        try:
            await self.publish(event.model_dump_json())
        except Exception as exc:  # the reply is stored; a reconnecting client resumes
            log.warning("session %s: reply %s not published: %r", self.session_id, event.seq, exc)

    async def _store_agent_events(self, seq: int, events: list[AgentEvent | ErrorEvent]) -> None:
        if not events:
            return
        try:
            await self.store.store_agent_events(reply_to_seq=seq, events=events)
        except Exception as exc:  # what the agents said is worth less than the conversation
            log.warning(
                "session %s turn %s: agent events not stored: %r", self.session_id, seq, exc
            )

    def _reply_done(
        self, reply_to: int, reply: StoredReply, timing: TurnTiming | None = None
    ) -> ReplyDone:
        return ReplyDone(
            seq=reply.seq,
            reply_to=reply_to,
            speaker=reply.speaker or self.persona.slug,
            text=reply.text,
            output_tokens=reply.output_tokens,
            citations=reply.citations,
            timing=timing,
        )

    async def replay(self, last_seq: int) -> None:
        for turn in await self.store.turns_after(last_seq=last_seq):
            await self._emit(turn)

    async def report(self, event: BaseModel) -> None:
        """Send an event that is not part of a turn (an error, the session's score)."""
        await self._emit(event)
