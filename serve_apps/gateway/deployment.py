"""The gateway deployment: the HTTP API and the conversation WebSocket."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import Query, Request, WebSocket
from fastapi.responses import JSONResponse
from ray import serve
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy.exc import OperationalError as SQLAlchemyOperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.websockets import WebSocketDisconnect, WebSocketState

from db import people_repository as people
from db import repositories as repo
from db import training_repository as training
from db.engine import create_engine, session_factory, tenant_transaction
from db.models import Scenario, SessionMode
from serve_apps.contracts.specs import ComplianceRuleSpec
from serve_apps.contracts.turn import (
    HistoryTurn,
    PersonaCard,
    PersonaPapers,
    ScenarioCard,
)
from serve_apps.contracts.wire import (
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
from serve_apps.conversation.turns import Conversation
from serve_apps.gateway.admin_routes import AdminRoutes
from serve_apps.gateway.analytics_routes import AnalyticsRoutes
from serve_apps.gateway.api import api
from serve_apps.gateway.auth import AccessTokens
from serve_apps.gateway.auth_routes import AuthRoutes
from serve_apps.gateway.config import GatewayConfig
from serve_apps.gateway.content_routes import ContentRoutes
from serve_apps.gateway.course_routes import CourseRoutes
from serve_apps.gateway.errors import APIError
from serve_apps.gateway.evaluation_routes import EvaluationRoutes
from serve_apps.gateway.identity import Identity, IdentityResolver
from serve_apps.gateway.knowledge_routes import KnowledgeRoutes
from serve_apps.gateway.people_routes import PeopleRoutes
from serve_apps.gateway.rate_limits import RateLimited, RateLimiter
from serve_apps.gateway.review_routes import ReviewRoutes
from serve_apps.gateway.schemas import (
    CreateSessionRequest,
    HealthOut,
    PersonaOut,
    ScenarioOut,
    SessionOut,
    TurnOut,
)
from serve_apps.gateway.stores import (
    PostgresConversationStore,
    RedisGenerationLocks,
    citations_of,
)
from serve_apps.knowledge.grounding import ground
from serve_apps.orchestrator.semantic import SemanticMatcher, ServeSentenceEmbedder

log = logging.getLogger("salesboost.gateway")

# WebSocket close codes (RFC 6455).
CLOSE_POLICY = 1008
CLOSE_TOO_BIG = 1009
CLOSE_INTERNAL = 1011
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


def session_channel(session_id: uuid.UUID) -> str:
    """The Redis pub/sub channel on which a session's live sockets hear of replies stored after
    the socket that asked for them closed (any gateway replica may hold the new socket)."""
    return f"salesboost:session:{session_id}:replies"


class _TurnQueue(asyncio.Queue):
    """The turns (and ``end``) of one socket, in order; ``in_hand`` counts those waiting and
    the one being answered."""

    def __init__(self) -> None:
        super().__init__()
        self.in_hand = 0


# Defined before the deployment class: Serve pickles the class when it is decorated, with
# the module's names that exist by then.
def _serialized(send: Callable[[str], Awaitable[None]]) -> Callable[[str], Awaitable[None]]:
    """One frame at a time on a socket that a turn, the frame reader and pushed replies share."""
    lock = asyncio.Lock()

    async def locked(frame: str) -> None:
        async with lock:
            await send(frame)

    return locked


def _scenario_out(scenario: Scenario) -> ScenarioOut:
    return ScenarioOut(
        id=scenario.id,
        slug=scenario.slug,
        title=scenario.title,
        stage=scenario.stage,
        difficulty=scenario.difficulty,
        description=scenario.description,
        personas=[
            PersonaOut(
                slug=p.persona.slug,
                name=p.persona.name,
                role=p.persona.role,
                company=p.persona.company,
            )
            for p in scenario.personas
        ],
    )


async def read_papers(
    knowledge: Any,
    *,
    tenant_id: str,
    own: str | None,
    vendor_website: str | None,
    text: str,
    top_k: int,
    timeout_s: float,
) -> PersonaPapers:
    """What the persona reads for a turn: its own company's papers and the vendor's website,
    from the scenario's knowledge bases for them, both at once (none: nothing to read)."""
    own_chunks, website_chunks = await asyncio.gather(
        *(
            ground(
                knowledge,
                tenant_id=tenant_id,
                knowledge_base=slug,
                text=text,
                top_k=top_k,
                timeout_s=timeout_s,
            )
            for slug in (own, vendor_website)
        )
    )
    return PersonaPapers(own=own_chunks, vendor_website=website_chunks)


def _persona_card(persona: Any) -> PersonaCard:
    return PersonaCard.model_validate(persona, from_attributes=True)


# Serve options come from the config (GatewayConfig.default_deployment_options, serve_apps/app.py).
@serve.deployment(name="Gateway")
@serve.ingress(api)
class Gateway(
    AuthRoutes,
    PeopleRoutes,
    KnowledgeRoutes,
    ContentRoutes,
    CourseRoutes,
    EvaluationRoutes,
    AnalyticsRoutes,
    AdminRoutes,
    ReviewRoutes,
):
    def __init__(
        self,
        config: GatewayConfig,
        orchestrator: Any,
        knowledge: Any,
        embedder: Any | None = None,
    ) -> None:
        from redis.asyncio import Redis

        self.settings = config.with_connections()
        if not self.settings.database_url or not self.settings.redis_url:
            raise ValueError("DATABASE_URL and REDIS_URL must reach the gateway replica")
        self.engine = create_engine(
            self.settings.database_url,
            pool_size=self.settings.db_pool_size,
            pool_recycle_s=self.settings.db_pool_recycle_s,
        )
        self.sessions = session_factory(self.engine)
        self.redis = Redis.from_url(self.settings.redis_url)
        self.orchestrator = orchestrator
        self.knowledge = knowledge
        # The Embedder deployment, for trying a semantic compliance rule on a sentence.
        self.matcher = (
            SemanticMatcher(ServeSentenceEmbedder(embedder)) if embedder is not None else None
        )
        if not self.settings.secret_key:
            raise ValueError("SALESBOOST_SECRET_KEY must reach the gateway replica")
        self.tokens = AccessTokens(
            secret=self.settings.secret_key.get_secret_value(),
            issuer=self.settings.jwt_issuer,
            audience=self.settings.jwt_audience,
            ttl_s=self.settings.access_token_ttl_s,
        )
        self.identities = IdentityResolver(
            self.sessions,
            self.redis,
            self.tokens,
            mode=self.settings.mode,
            ticket_ttl_s=self.settings.ws_ticket_ttl_s,
        )
        self.allowed_origins = frozenset(o.rstrip("/") for o in self.settings.allowed_origins)
        self.limits = RateLimiter(
            self.redis,
            per_ip_per_min=self.settings.rate_limit_ip_per_min,
            per_user_per_min=self.settings.rate_limit_user_per_min,
            per_tenant_per_min=self.settings.rate_limit_tenant_per_min,
            tenant_tokens_per_day=self.settings.tenant_tokens_per_day,
        )

    # --- health -------------------------------------------------------------------------

    @api.get("/health/live", response_model=HealthOut, tags=["health"])
    async def live(self) -> HealthOut:
        return HealthOut(status="ok")

    @api.get("/health/ready", response_model=HealthOut, tags=["health"])
    async def ready(self) -> JSONResponse:
        from sqlalchemy import text

        async def database() -> None:
            async with self.sessions() as session:
                await session.execute(text("SELECT 1"))

        checks = {
            "database": database(),
            "redis": self.redis.ping(),
            "model": self.orchestrator.check_health.remote(),
            "knowledge": self.knowledge.check_health.remote(),
        }
        results: dict[str, str] = {}
        for name, pending in checks.items():
            try:
                await asyncio.wait_for(pending, timeout=5)
                results[name] = "ok"
            except Exception as exc:  # any failure means not ready; the reason is reported
                results[name] = f"failed: {type(exc).__name__}"
        ok = all(v == "ok" for v in results.values())
        engines: list[dict[str, str]] = []
        if results["model"] == "ok":
            with contextlib.suppress(Exception):  # what the engines run in is not readiness
                engines = await asyncio.wait_for(self.orchestrator.engine_info.remote(), 5)
        body = HealthOut(status="ready" if ok else "not_ready", checks=results, engines=engines)
        return JSONResponse(body.model_dump(), status_code=200 if ok else 503)

    # --- scenarios and sessions ---------------------------------------------------------

    @api.get("/v1/scenarios", response_model=list[ScenarioOut], tags=["training"])
    async def scenarios(self, request: Request) -> list[ScenarioOut]:
        who = await self._identity_from(request)
        async with tenant_transaction(self.sessions, who.tenant_id) as session:
            return [_scenario_out(s) for s in await repo.list_scenarios(session)]

    @api.post("/v1/sessions", response_model=SessionOut, status_code=201, tags=["training"])
    async def create_session(self, body: CreateSessionRequest, request: Request) -> SessionOut:
        who = await self._identity_from(request)
        async with tenant_transaction(self.sessions, who.tenant_id) as session:
            try:
                scenario = await repo.scenario_by_key(session, key=body.scenario)
            except repo.NotFoundError:
                raise APIError(
                    404, "scenario_not_found", f"no scenario {body.scenario!r}"
                ) from None
            mode, course_id = SessionMode(body.mode), None
            if body.course is not None:  # the course decides the mode
                course = await self.course_for_session(session, who, body.course, scenario)
                mode, course_id = course.mode, course.id
            training_session = await repo.create_training_session(
                session,
                tenant_id=who.tenant_id,
                user_id=who.user_id,
                scenario_id=scenario.id,
                mode=mode,
                course_id=course_id,
            )
            await session.refresh(training_session)
            return SessionOut(
                id=training_session.id,
                status=training_session.status.value,
                mode=training_session.mode.value,
                created_at=training_session.created_at,
                scenario=_scenario_out(scenario),
                stream_url=f"/v1/sessions/{training_session.id}/stream",
            )

    @api.get("/v1/sessions/{session_id}", response_model=SessionOut, tags=["training"])
    async def get_session(self, session_id: uuid.UUID, request: Request) -> SessionOut:
        """A session with its turns: trainees their own, managers their teams', admins any."""
        who = await self._identity_from(request)
        async with tenant_transaction(self.sessions, who.tenant_id) as session:
            visible = await people.visible_user_ids(session, user_id=who.user_id, role=who.role)
            try:
                ctx = await repo.load_session_context(session, session_id=session_id)
            except repo.NotFoundError:
                ctx = None
            if ctx is None or (visible is not None and ctx.session.user_id not in visible):
                raise APIError(404, "session_not_found", "no such training session")
            speakers = {p.id: p.slug for p in ctx.personas}
            return SessionOut(
                id=ctx.session.id,
                status=ctx.session.status.value,
                mode=ctx.session.mode.value,
                created_at=ctx.session.created_at,
                scenario=_scenario_out(ctx.scenario),
                stream_url=f"/v1/sessions/{ctx.session.id}/stream",
                turns=[
                    TurnOut(
                        seq=t.seq,
                        speaker=repo.turn_speaker(t, speakers),
                        text=t.content,
                        client_turn_id=t.client_turn_id,
                        reply_to=t.reply_to_seq,
                        citations=citations_of(t),
                    )
                    for t in ctx.turns
                ],
            )

    async def _identity_from(self, request: Request) -> Identity:
        """The caller, after the per-address, per-user and per-company rate limits."""
        await self.limits.check_ip(request.client.host if request.client else None)
        who = await self.identities.from_headers(
            request.headers.get("authorization"),
            request.headers.get("x-dev-tenant"),
            request.headers.get("x-dev-user"),
        )
        await self.limits.check_caller(who.tenant_id, who.user_id)
        return who

    async def _websocket_identity(
        self, websocket: WebSocket, ticket: str | None, dev_tenant: str | None, dev_user: str | None
    ) -> Identity:
        origin = websocket.headers.get("origin")
        if origin is not None and origin.rstrip("/") not in self.allowed_origins:
            raise APIError(403, "origin_not_allowed", f"origin {origin[:80]!r} is not allowed")
        if ticket is not None:
            return await self.identities.redeem_ticket(ticket)
        return await self.identities.from_headers(
            websocket.headers.get("authorization"),
            dev_tenant or websocket.headers.get("x-dev-tenant"),
            dev_user or websocket.headers.get("x-dev-user"),
        )

    # --- the conversation ---------------------------------------------------------------

    @api.websocket("/v1/sessions/{session_id}/stream")
    async def stream(
        self,
        websocket: WebSocket,
        session_id: uuid.UUID,
        last_seq: Annotated[str | None, Query(description="Replay the turns after it.")] = None,
        ticket: Annotated[str | None, Query(max_length=128)] = None,
        dev_tenant: Annotated[str | None, Query(max_length=64)] = None,
        dev_user: Annotated[str | None, Query(max_length=320)] = None,
    ) -> None:
        # Authenticated before it is accepted: a refused handshake gets HTTP 403, no socket.
        try:
            who = await self._websocket_identity(websocket, ticket, dev_tenant, dev_user)
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
            conversation = await self._open_conversation(websocket, who, session_id)
        except (APIError, repo.NotFoundError) as exc:
            reason = exc.message if isinstance(exc, APIError) else "no such training session"
            log.info("ws %s refused: %s", session_id, reason)
            await websocket.close(code=CLOSE_POLICY, reason=reason[:120])
            return
        # Listening before the replay: a reply stored in between is replayed or pushed (or
        # both; a client keeps one per ``seq``), never missed.
        pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
        pushed: asyncio.Task | None = None
        try:
            await pubsub.subscribe(session_channel(session_id))
            pushed = asyncio.create_task(self._push_published(pubsub, conversation))
            if replay_after is not None:
                await conversation.replay(replay_after)
            await self._converse(websocket, conversation, who)
        except WebSocketDisconnect:
            return
        except Exception:
            log.exception("ws %s: unexpected failure", session_id)
            if websocket.application_state != WebSocketState.DISCONNECTED:
                await websocket.close(code=CLOSE_INTERNAL, reason="internal error")
        finally:
            if pushed is not None:
                pushed.cancel()
            with contextlib.suppress(Exception):
                await pubsub.aclose()

    async def _push_published(self, pubsub: Any, conversation: Conversation) -> None:
        """Send this socket the replies that other sockets' turns stored after they closed."""
        try:
            async for message in pubsub.listen():
                if message.get("type") == "message":
                    await conversation.report(server_events.validate_json(message["data"]))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # replies are stored; the client can still resume
            log.warning("ws %s: published replies stop: %r", conversation.session_id, exc)

    async def _open_conversation(
        self, websocket: WebSocket, who: Identity, session_id: uuid.UUID
    ) -> Conversation:
        async with tenant_transaction(self.sessions, who.tenant_id) as session:
            ctx = await repo.load_session_context(
                session, session_id=session_id, user_id=who.user_id
            )
            rules = (
                await training.compliance_rules(session)
                if ctx.session.mode != SessionMode.conversation
                else []
            )
        persona = ctx.personas[0]
        slugs = {p.id: p.slug for p in ctx.personas}
        history = [
            HistoryTurn(
                speaker="trainee" if t.speaker.value == "trainee" else "npc",
                text=t.content,
                persona=slugs.get(t.persona_id) if t.persona_id else None,
            )
            for t in ctx.turns
        ]
        memory = None
        if ctx.session.mode == SessionMode.practice and not ctx.turns:
            memory = await self.trainee_memory(who, ctx.scenario.description)
        orchestrator = self.orchestrator.options(stream=True)
        return Conversation(
            session_id=session_id,
            tenant_id=who.tenant_id,
            user_id=who.user_id,
            on_reply=lambda tokens: self.limits.spend_tokens(who.tenant_id, tokens),
            knowledge_base=ctx.scenario.knowledge_base,
            persona=_persona_card(persona),
            scenario=ScenarioCard.model_validate(ctx.scenario, from_attributes=True),
            history=history,
            committee=[_persona_card(p) for p in ctx.personas],
            mode=ctx.session.mode.value,
            compliance_rules=[
                ComplianceRuleSpec.model_validate(r, from_attributes=True) for r in rules
            ],
            memory=memory,
            store=PostgresConversationStore(
                self.sessions,
                tenant_id=who.tenant_id,
                session_id=session_id,
                persona_ids={p.slug: p.id for p in ctx.personas},
            ),
            locks=RedisGenerationLocks(self.redis, ttl_s=self.settings.generation_lock_ttl_s),
            publish=lambda event: self.redis.publish(session_channel(session_id), event),
            reply_source=lambda request: orchestrator.stream_turn.remote(request),
            # Straight to the knowledge service: one hop less before the first token.
            grounder=lambda text: ground(
                self.knowledge,
                tenant_id=str(who.tenant_id),
                knowledge_base=ctx.scenario.knowledge_base,
                text=text,
                top_k=self.settings.grounding_top_k,
                timeout_s=self.settings.grounding_timeout_s,
            ),
            paper_reader=(
                None
                if not (
                    ctx.scenario.customer_knowledge_base
                    or ctx.scenario.vendor_website_knowledge_base
                )
                else lambda text: read_papers(
                    self.knowledge,
                    tenant_id=str(who.tenant_id),
                    own=ctx.scenario.customer_knowledge_base,
                    vendor_website=ctx.scenario.vendor_website_knowledge_base,
                    text=text,
                    top_k=self.settings.grounding_top_k,
                    timeout_s=self.settings.grounding_timeout_s,
                )
            ),
            send=_serialized(websocket.send_text),
            max_tokens=self.settings.npc_max_tokens,
            temperature=self.settings.npc_temperature,
        )

    async def _end_over_websocket(self, conversation: Conversation, who: Identity) -> None:
        try:
            report, failures = await self.finish_session(who, conversation.session_id)
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
        self, websocket: WebSocket, conversation: Conversation, who: Identity
    ) -> None:
        """Read frames while turns are answered: pings and resumes are answered at once, and
        turns (and ``end``) are taken one at a time, in the order they came."""
        # Counted from arrival until done, so that a refusal does not depend on whether the
        # worker has taken the first turn off the queue yet.
        waiting: _TurnQueue = _TurnQueue()
        worker = asyncio.create_task(self._take_turns(websocket, conversation, who, waiting))
        try:
            await self._read_frames(websocket, conversation, waiting)
        finally:
            conversation.client_left()
            while not waiting.empty():  # not started: neither stored nor acknowledged
                waiting.get_nowait()
            waiting.put_nowait(None)
            # The turn being answered goes on to be stored (and published), even if this
            # handler is cancelled.
            await asyncio.shield(worker)

    async def _read_frames(
        self,
        websocket: WebSocket,
        conversation: Conversation,
        waiting: _TurnQueue,
    ) -> None:
        limit = self.settings.max_frame_bytes
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
                frame = parse_client_frame(
                    payload, max_message_chars=self.settings.max_message_chars
                )
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
                        client_turn_id=frame.client_turn_id
                        if isinstance(frame, TraineeTurn)
                        else None,
                    )
                )
            else:
                waiting.in_hand += 1
                waiting.put_nowait(frame)

    async def _take_turns(
        self,
        websocket: WebSocket,
        conversation: Conversation,
        who: Identity,
        waiting: _TurnQueue,
    ) -> None:
        try:
            while (frame := await waiting.get()) is not None:
                try:
                    if isinstance(frame, TraineeTurn):
                        await self._take_turn(conversation, frame)
                    else:
                        await self._end_over_websocket(conversation, who)
                finally:
                    waiting.in_hand -= 1
        except Exception:
            log.exception("ws %s: unexpected failure", conversation.session_id)
            if websocket.application_state != WebSocketState.DISCONNECTED:
                with contextlib.suppress(Exception):
                    await websocket.close(code=CLOSE_INTERNAL, reason="internal error")

    async def _take_turn(self, conversation: Conversation, frame: TraineeTurn) -> None:
        try:
            await self._answer_turn(conversation, frame)
        except STORE_DID_NOT_ANSWER as exc:
            # A store that did not answer in time (a saturated machine, a failover): this
            # turn is told to come again, and the socket stays open. Its trainee turn, if it
            # was acknowledged, is stored; sent again with the same client_turn_id it is
            # answered then, once.
            log.warning("ws %s: a store did not answer: %r", conversation.session_id, exc)
            await conversation.report(
                ErrorEvent(
                    code="unavailable",
                    message="the service is busy; send the turn again in a few seconds",
                    client_turn_id=frame.client_turn_id,
                    retry_after_s=UNAVAILABLE_RETRY_AFTER_S,
                )
            )

    async def _answer_turn(self, conversation: Conversation, frame: TraineeTurn) -> None:
        try:
            await self.limits.check_caller(conversation.tenant_id, conversation.user_id)
            await self.limits.check_token_budget(conversation.tenant_id)
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
