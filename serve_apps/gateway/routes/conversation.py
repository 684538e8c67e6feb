"""The conversation WebSocket: frames in, turns answered one at a time, replies pushed.

What a turn does (store, stream the reply, the agents) is ``serve_apps.conversation.turns``;
this module is the socket around it: who is calling, the queue of turns, pings and resumes,
and the replies other sockets stored for this session (Redis pub/sub).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated, Any, cast

from fastapi import APIRouter, Query, WebSocket
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy.exc import OperationalError as SQLAlchemyOperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.websockets import WebSocketDisconnect, WebSocketState

from db import repositories as repo
from db.engine import tenant_transaction
from db.transcript import history_turn
from serve_apps.contracts.models import ModelRoute
from serve_apps.contracts.turn import (
    NPCChunk,
    SessionModeName,
    TurnRequest,
)
from serve_apps.contracts.wire import (
    AgentEvent,
    EndSession,
    ErrorEvent,
    FrameError,
    Ping,
    Pong,
    Resume,
    Score,
    TraineeTurn,
    parse_client_frame,
    parse_last_seq,
    server_events,
)
from serve_apps.conversation.turns import Conversation, TurnContent
from serve_apps.gateway.content_cache import ScenarioContent
from serve_apps.gateway.deps import StateDep
from serve_apps.gateway.errors import APIError
from serve_apps.gateway.identity import Identity
from serve_apps.gateway.rate_limits import RateLimited, RateLimiter
from serve_apps.gateway.state import GatewayState
from serve_apps.gateway.stores import PostgresConversationStore, RedisGenerationLocks
from serve_apps.gateway.use_cases.evaluation import finish_session, trainee_memory
from serve_apps.knowledge.grounding import read_papers
from serve_apps.telemetry import tracing
from serve_apps.telemetry.logs import log_context
from serve_apps.telemetry.metrics import product_metrics

log = logging.getLogger("salesboost.gateway")
router = APIRouter()

# WebSocket close codes (RFC 6455).
CLOSE_POLICY = 1008
CLOSE_TOO_BIG = 1009
CLOSE_INTERNAL = 1011
CLOSE_TRY_AGAIN_LATER = 1013  # every place for a live conversation is taken
# Turns sent while one is being answered wait their turn, in order; with this many waiting
# (beside the one being answered), a turn is refused (``too_many_turns``: not stored, not
# acknowledged; send it again later).
MAX_WAITING_TURNS = 4
# Redis or PostgreSQL did not answer a turn in time, or was briefly unreachable (a
# saturated machine, a failover, a full connection pool): the turn is ``unavailable`` and
# may be sent again after this long. Other store errors (a bad command, a constraint) are
# faults and are not retried.
UNAVAILABLE_RETRY_AFTER_S = 3
STORE_DID_NOT_ANSWER = (
    RedisConnectionError,
    RedisTimeoutError,
    SQLAlchemyOperationalError,
    PoolTimeoutError,
    TimeoutError,
)


# Conversation sockets open on this replica (its gauge in the metrics).
_OPEN_SOCKETS = [0]


def session_channel(session_id: uuid.UUID) -> str:
    """The Redis pub/sub channel on which a session's live sockets hear of replies stored after
    the socket that asked for them closed (any gateway replica may hold the new socket)."""
    return f"salesboost:session:{session_id}:replies"


class _TurnQueue(asyncio.Queue[TraineeTurn | EndSession | None]):
    """The turns (and ``end``) of one socket, in order; ``in_hand`` counts those waiting and
    the one being answered."""

    def __init__(self) -> None:
        super().__init__()
        self.in_hand = 0


def _serialized(send: Callable[[str], Awaitable[None]]) -> Callable[[str], Awaitable[None]]:
    """One frame at a time on a socket that a turn, the frame reader and pushed replies share."""
    lock = asyncio.Lock()

    async def locked(frame: str) -> None:
        async with lock:
            await send(frame)

    return locked


def turn_content(content: ScenarioContent, mode: SessionModeName) -> TurnContent:
    """What a turn's prompt is built from; a persona-only conversation checks no rules."""
    if not content.cast:
        raise ValueError("the scenario has no persona")
    return TurnContent(
        persona=content.cast[0].card,
        committee=[member.card for member in content.cast],
        scenario=content.scenario,
        compliance_rules=content.compliance_rules if mode != "conversation" else [],
    )


async def _websocket_identity(
    state: GatewayState,
    websocket: WebSocket,
    ticket: str | None,
    dev_tenant: str | None,
    dev_user: str | None,
) -> Identity:
    origin = websocket.headers.get("origin")
    if origin is not None and origin.rstrip("/") not in state.allowed_origins:
        raise APIError(403, "origin_not_allowed", f"origin {origin[:80]!r} is not allowed")
    if ticket is not None:
        return await state.identities.redeem_ticket(ticket)
    return await state.identities.from_headers(
        websocket.headers.get("authorization"),
        dev_tenant or websocket.headers.get("x-dev-tenant"),
        dev_user or websocket.headers.get("x-dev-user"),
    )


@router.websocket("/v1/sessions/{session_id}/stream")
async def stream(
    websocket: WebSocket,
    session_id: uuid.UUID,
    state: StateDep,
    last_seq: Annotated[str | None, Query(description="Replay the turns after it.")] = None,
    ticket: Annotated[str | None, Query(max_length=128)] = None,
    dev_tenant: Annotated[str | None, Query(max_length=64)] = None,
    dev_user: Annotated[str | None, Query(max_length=320)] = None,
) -> None:
    # Authenticated before it is accepted: a refused handshake gets HTTP 403, no socket.
    try:
        who = await _websocket_identity(state, websocket, ticket, dev_tenant, dev_user)
    except APIError as exc:
        log.info("ws %s refused before accept: %s", session_id, exc.message)
        await websocket.close(code=CLOSE_POLICY, reason=exc.message[:120])
        return
    await websocket.accept()
    try:
        replay_after = parse_last_seq(last_seq)
    except ValueError as exc:
        log.info("ws %s refused: %s", session_id, exc)
        await websocket.close(code=CLOSE_POLICY, reason=str(exc)[:120])
        return
    try:
        conversation = await _open_conversation(state, websocket, who, session_id)
    except (APIError, repo.NotFoundError) as exc:
        reason = exc.message if isinstance(exc, APIError) else "no such training session"
        log.info("ws %s refused: %s", session_id, reason)
        await websocket.close(code=CLOSE_POLICY, reason=reason[:120])
        return
    with log_context(session_id=str(session_id), tenant_id=str(who.tenant_id)):
        live = str(session_id)
        if not await state.admission.admit(live):
            await _refuse_overloaded(state, websocket, conversation)
            return
        beating = asyncio.create_task(_keep_live(state, live))
        try:
            await _serve_conversation(state, websocket, conversation, who, replay_after)
        finally:
            beating.cancel()
            with contextlib.suppress(Exception):  # it lapses on its own after three beats
                await state.admission.leave(live)


async def _refuse_overloaded(
    state: GatewayState, websocket: WebSocket, conversation: Conversation
) -> None:
    log.info("ws %s: refused: no place for a live conversation", conversation.session_id)
    retry_after_s = state.admission.retry_after_s
    await conversation.report(
        ErrorEvent(
            code="overloaded",
            message=f"every place for a live conversation is taken; reconnect in {retry_after_s} s",
            retry_after_s=retry_after_s,
        )
    )
    await websocket.close(code=CLOSE_TRY_AGAIN_LATER, reason="overloaded")


async def _keep_live(state: GatewayState, session_id: str) -> None:
    """The conversation's heartbeat in the admission set for as long as its socket is open."""
    while True:
        await asyncio.sleep(state.admission.heartbeat_s)
        try:
            with tracing.untraced():
                await state.admission.heartbeat(session_id)
        except Exception as exc:  # Redis away for a moment: the next beat tries again
            log.warning("ws %s: admission heartbeat failed: %r", session_id, exc)


async def _serve_conversation(
    state: GatewayState,
    websocket: WebSocket,
    conversation: Conversation,
    who: Identity,
    replay_after: int | None,
) -> None:
    session_id = conversation.session_id
    # Listening before the replay: a reply stored in between is replayed or pushed (or
    # both; a client keeps one per ``seq``), never missed.
    pubsub = state.redis.pubsub(ignore_subscribe_messages=True)
    pushed: asyncio.Task[None] | None = None
    open_sockets = product_metrics().websockets_open
    _OPEN_SOCKETS[0] += 1
    open_sockets.set(_OPEN_SOCKETS[0])
    try:
        await pubsub.subscribe(session_channel(session_id))
        pushed = asyncio.create_task(_push_published(pubsub, conversation))
        if replay_after is not None:
            await conversation.replay(replay_after)
        await _converse(state, websocket, conversation, who)
    except WebSocketDisconnect:
        return
    except Exception:
        log.exception("ws %s: unexpected failure", session_id)
        if websocket.application_state != WebSocketState.DISCONNECTED:
            await websocket.close(code=CLOSE_INTERNAL, reason="internal error")
    finally:
        _OPEN_SOCKETS[0] -= 1
        open_sockets.set(_OPEN_SOCKETS[0])
        if pushed is not None:
            pushed.cancel()
        with contextlib.suppress(Exception):
            await pubsub.aclose()


async def _push_published(pubsub: Any, conversation: Conversation) -> None:
    """Send this socket the replies that other sockets' turns stored after they closed."""
    try:
        async for message in pubsub.listen():
            if message.get("type") == "message":
                await conversation.report(server_events.validate_json(message["data"]))
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # replies are stored; the client can still resume
        log.warning("ws %s: published replies stop: %r", conversation.session_id, exc)


async def _model_routes(
    state: GatewayState, npc_model: str | None
) -> tuple[ModelRoute | None, ModelRoute | None]:
    """The versions that answer a turn of a session given ``npc_model`` when it started: that
    one while it is served (a canary's candidate, or the active version), else the active
    one; a swap, a promotion or a rollback moves the next turn of every conversation."""
    routing = await state.model_routing.read()
    return routing.route_for("npc", npc_model), routing.route("judge")


async def _open_conversation(
    state: GatewayState, websocket: WebSocket, who: Identity, session_id: uuid.UUID
) -> Conversation:
    settings = state.settings
    # The session's own rows from the database; its scenario's content through the cache,
    # as each turn reads it again (``content_source``).
    async with tenant_transaction(state.sessions, who.tenant_id) as session:
        training = await repo.get_training_session(
            session, session_id=session_id, user_id=who.user_id
        )
        turns = await repo.turns_after(session, session_id=session_id, after_seq=0)
    scenario_id = training.scenario_id
    mode = cast(SessionModeName, training.mode.value)
    content = await state.content.scenario(who.tenant_id, scenario_id)
    opening = turn_content(content, mode)
    slugs = {member.id: member.card.slug for member in content.cast}
    history = [history_turn(t, slugs) for t in turns]
    memory = None
    if mode == "practice" and not turns:
        memory = await trainee_memory(
            state.sessions, state.knowledge, who, content.scenario.description
        )
    store = PostgresConversationStore(
        state.sessions,
        tenant_id=who.tenant_id,
        session_id=session_id,
        persona_ids={member.card.slug: member.id for member in content.cast},
    )

    async def content_now() -> TurnContent:
        now = await state.content.scenario(who.tenant_id, scenario_id)
        store.add_personas({member.card.slug: member.id for member in now.cast})
        return turn_content(now, mode)

    orchestrator = state.orchestrator.options(stream=True)

    async def publish(event: str) -> None:
        await state.redis.publish(session_channel(session_id), event)

    def reply_source(request: TurnRequest) -> AsyncIterator[NPCChunk | AgentEvent | ErrorEvent]:
        # A streaming handle's response is an async iterator of what the generator yields.
        return cast(
            AsyncIterator[NPCChunk | AgentEvent | ErrorEvent],
            orchestrator.stream_turn.remote(request),
        )

    # The knowledge bases are the ones of the socket's opening: retrieval starts the moment
    # a turn arrives, before the content is read again.
    return Conversation(
        session_id=session_id,
        tenant_id=who.tenant_id,
        user_id=who.user_id,
        on_reply=lambda tokens: state.limits.spend_tokens(who.tenant_id, tokens),
        knowledge_base=content.knowledge_base,
        persona=opening.persona,
        scenario=opening.scenario,
        history=history,
        committee=opening.committee,
        mode=mode,
        compliance_rules=opening.compliance_rules,
        memory=memory,
        store=store,
        content_source=content_now,
        model_source=lambda: _model_routes(state, training.npc_model),
        locks=RedisGenerationLocks(state.redis, ttl_s=settings.generation_lock_ttl_s),
        publish=publish,
        reply_source=reply_source,
        paper_reader=(
            None
            if not (content.customer_knowledge_base or content.vendor_website_knowledge_base)
            else lambda text: read_papers(
                state.knowledge,
                tenant_id=str(who.tenant_id),
                own=content.customer_knowledge_base,
                vendor_website=content.vendor_website_knowledge_base,
                text=text,
                top_k=settings.grounding_top_k,
                timeout_s=settings.grounding_timeout_s,
                token_budget=settings.grounding_token_budget,
            )
        ),
        send=_serialized(websocket.send_text),
        max_tokens=settings.npc_max_tokens,
        temperature=settings.npc_temperature,
    )


async def _end_over_websocket(
    state: GatewayState, conversation: Conversation, who: Identity
) -> None:
    try:
        report, failures = await finish_session(
            state.sessions, state.orchestrator, state.knowledge, who, conversation.session_id
        )
    except Exception as exc:
        log.warning("ws %s: scoring failed: %r", conversation.session_id, exc)
        await conversation.report(
            ErrorEvent(
                code="agent_failed",
                agent="evaluator",
                message="the session ended but could not be scored; ask for the report later",
            )
        )
        return
    # The evaluator's judge failures are stored with the session's report, not shown.
    if report is None:
        await conversation.report(
            ErrorEvent(code="no_rubric", message="the session ended; it has no score to give")
        )
    else:
        await conversation.report(Score(session_id=str(conversation.session_id), report=report))


async def _converse(
    state: GatewayState, websocket: WebSocket, conversation: Conversation, who: Identity
) -> None:
    """Read frames while turns are answered: pings and resumes are answered at once, and
    turns (and ``end``) are taken one at a time, in the order they came."""
    # Counted from arrival until done, so that a refusal does not depend on whether the
    # worker has taken the first turn off the queue yet.
    waiting = _TurnQueue()
    worker = asyncio.create_task(_take_turns(state, websocket, conversation, who, waiting))
    try:
        await _read_frames(state, websocket, conversation, waiting)
    finally:
        conversation.client_left()
        while not waiting.empty():  # not started: neither stored nor acknowledged
            waiting.get_nowait()
        waiting.put_nowait(None)
        # The turn being answered goes on to be stored (and published), even if this
        # handler is cancelled.
        await asyncio.shield(worker)


async def _read_frames(
    state: GatewayState, websocket: WebSocket, conversation: Conversation, waiting: _TurnQueue
) -> None:
    limit = state.settings.max_frame_bytes
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return
        raw = message.get("text")
        size = len(raw.encode()) if raw is not None else len(message.get("bytes") or b"")
        if size > limit:
            log.info("ws %s: frame of %d bytes closed with 1009", conversation.session_id, size)
            await websocket.close(code=CLOSE_TOO_BIG, reason=f"frame over {limit} bytes")
            return
        payload = raw if raw is not None else message.get("bytes") or b""
        try:
            frame = parse_client_frame(payload, max_message_chars=state.settings.max_message_chars)
        except FrameError as exc:
            log.info("ws %s: rejected frame: %s", conversation.session_id, exc.event.message)
            await conversation.report(exc.event)
            continue
        if isinstance(frame, Ping):
            await conversation.report(Pong())
        elif isinstance(frame, Resume):
            await conversation.replay(frame.last_seq)
        elif waiting.in_hand > MAX_WAITING_TURNS:
            await conversation.report(
                ErrorEvent(
                    code="too_many_turns",
                    message=f"{MAX_WAITING_TURNS} turns are already waiting for the reply "
                    "being generated; send this one again after a reply_done",
                    client_turn_id=frame.client_turn_id if isinstance(frame, TraineeTurn) else None,
                )
            )
        else:
            waiting.in_hand += 1
            waiting.put_nowait(frame)


async def _take_turns(
    state: GatewayState,
    websocket: WebSocket,
    conversation: Conversation,
    who: Identity,
    waiting: _TurnQueue,
) -> None:
    try:
        while (frame := await waiting.get()) is not None:
            try:
                if isinstance(frame, TraineeTurn):
                    await take_turn(state.limits, conversation, frame)
                else:
                    await _end_over_websocket(state, conversation, who)
            finally:
                waiting.in_hand -= 1
    except Exception:
        log.exception("ws %s: unexpected failure", conversation.session_id)
        if websocket.application_state != WebSocketState.DISCONNECTED:
            with contextlib.suppress(Exception):
                await websocket.close(code=CLOSE_INTERNAL, reason="internal error")


async def take_turn(limits: RateLimiter, conversation: Conversation, frame: TraineeTurn) -> None:
    """Answer a trainee turn, in a trace of its own; a store that does not answer in time
    makes it ``unavailable``."""
    attributes = {
        tracing.SESSION_ID: str(conversation.session_id),
        tracing.TENANT_ID: str(conversation.tenant_id),
        tracing.MODE: conversation.mode,
    }
    with tracing.root_span("turn", attributes) as turn_span:
        try:
            await _answer_turn(limits, conversation, frame)
        except STORE_DID_NOT_ANSWER as exc:
            tracing.mark_error(turn_span, "unavailable")
            await _unavailable(conversation, frame, exc)


async def _unavailable(conversation: Conversation, frame: TraineeTurn, exc: Exception) -> None:
    """A store that did not answer in time (a saturated machine, a failover): this turn is
    told to come again, and the socket stays open. Its trainee turn, if it was acknowledged,
    is stored; sent again with the same client_turn_id it is answered then, once."""
    log.warning("ws %s: a store did not answer: %r", conversation.session_id, exc)
    await conversation.report(
        ErrorEvent(
            code="unavailable",
            message="the service is busy; send the turn again in a few seconds",
            client_turn_id=frame.client_turn_id,
            retry_after_s=UNAVAILABLE_RETRY_AFTER_S,
        )
    )


async def _answer_turn(limits: RateLimiter, conversation: Conversation, frame: TraineeTurn) -> None:
    try:
        await limits.check_caller(conversation.tenant_id, conversation.user_id)
        await limits.check_token_budget(conversation.tenant_id)
    except RateLimited as exc:
        await conversation.report(
            ErrorEvent(
                code="rate_limited",
                message=exc.message,
                client_turn_id=frame.client_turn_id,
                retry_after_s=exc.retry_after_s,
            )
        )
        return
    try:
        await conversation.handle_turn(frame)
    except repo.NotFoundError:
        await conversation.report(
            ErrorEvent(code="session_ended", message="this training session has ended")
        )
