"""The changes of a role's model versions under live conversations, run inside the cluster.

The swap:

    validate ─► lock the role ─► deploy the candidate's application beside the others
      ─► wait until it runs ─► probe it (health, one token) ─► route the role to it
      ─► wait out every gateway's routing cache ─► retire the old version's application
         (Serve lets its replicas finish the replies they hold) ─► unlock

The canary brings the candidate up the same way (validate ─► lock ─► deploy ─► wait ─►
probe), then records it in the routing document with its share of the new sessions and its
seed, and unlocks: both versions answer until the canary is promoted (the candidate answers
every session) or rolled back (the active version does); either one waits out the routing
caches and retires the version that no longer answers.

A replay (``replay.py``) brings the candidate up the same way without routing anything to it,
runs stored sessions' trainee turns against it through the orchestrator, and removes it after
unless it was served already. It holds the locks of both roles while it runs: a swap, a
canary, a promotion or a rollback would move or retire what it uses.

Anything that fails before the routing moves leaves the old version answering: the candidate
is removed and the status says why. One replica holds the changes (a Redis lock per role
makes a second change of the same role a conflict, whichever replica or caller asks; a
running canary makes a swap or another canary of its role one).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Literal

from ray import serve

from models.llm import LLMDeploymentSettings
from serve_apps.connections import Connections
from serve_apps.contracts.models import ModelRole, ModelRoute
from serve_apps.contracts.replay import MAX_REPLAY_SESSIONS, ReplayTurnSettings, StoredSession
from serve_apps.model_lifecycle.replay import (
    REPLAY_CONCURRENCY,
    REPLAY_DEADLINE_S,
    ReplayEngine,
    ReplayState,
    ReplayStatus,
    ReplayStore,
    ServeReplayEngine,
    SessionReplay,
    build_report,
    replay_session,
)
from serve_apps.model_lifecycle.routing import (
    MAX_SHARE,
    MIN_SHARE,
    ROUTING_CACHE_S,
    Canary,
    CanaryStateError,
    ModelRouting,
    RoleRouting,
    RoutingStore,
    SwapStatus,
)
from serve_apps.model_lifecycle.serve_control import ServeControl, model_application
from serve_apps.telemetry.logs import configure_logging

log = logging.getLogger("ray.serve.salesboost.models")
# Who holds a role's lock while the routing is checked against the deployed applications.
RECONCILE_HOLDER = "the check of the routing at start"

# A CPU engine starts in about a minute on an idle machine, several under load.
START_TIMEOUT_S = 900
LOCK_TTL_S = START_TIMEOUT_S + 300


class ChangeRefused(RuntimeError):
    """Another change of this role's versions runs, or the role's state does not allow this
    one: a swap or a canary while a canary runs, a promote or rollback with none (the HTTP
    API answers 409)."""


class CandidateFailed(RuntimeError):
    """The candidate did not come up or did not answer; what was added for it is removed."""


# A canary splits the persona's sessions: the judge answers many agents in a turn, for every
# session alike, and is swapped.
CANARY_ROLES: tuple[ModelRole, ...] = ("npc",)
# Stored replies record the persona's version: it is the one a replay compares.
REPLAY_ROLES: tuple[ModelRole, ...] = ("npc",)
# A replay's locks lapse this long after its replica stops renewing them (it renews them at a
# quarter of it), so that a replica that died with one does not hold the roles for long.
REPLAY_LOCK_TTL_S = 120
REPLAY_HOLDER = "replay:"


def route_of(role: ModelRole, settings: LLMDeploymentSettings) -> ModelRoute:
    return ModelRoute(
        role=role,
        version=settings.version,
        # The persona asks for its adapter where the config has one; the judge, the base model.
        model_id=settings.persona_model_id() if role == "npc" else settings.model_id,
        app_name=settings.app_name,
        deployment_name=settings.deployment_name,
    )


@serve.deployment(name="ModelLifecycle", num_replicas=1, ray_actor_options={"num_cpus": 0})
class ModelLifecycle:
    def __init__(
        self,
        configured: dict[ModelRole, ModelRoute],
        orchestrator: Any | None = None,
        knowledge: Any | None = None,
    ) -> None:
        configure_logging("models")
        from redis.asyncio import Redis

        connections = Connections()
        if not connections.redis_url:
            raise ValueError("REDIS_URL must reach the model lifecycle replica")
        redis = Redis.from_url(connections.redis_url)
        self._routing = RoutingStore(redis, configured)
        self._replays = ReplayStore(redis)
        # A replay sends its turns to the orchestrator, as the gateway sends live ones.
        self._replay_engine: ReplayEngine | None = (
            ServeReplayEngine(orchestrator, knowledge) if orchestrator is not None else None
        )
        self._serve = ServeControl()
        self._tasks: set[asyncio.Task[None]] = set()
        # The constructor runs on the replica's event loop.
        self._start(self._reconcile_at_start())

    async def _reconcile_at_start(self) -> None:
        await self.reconcile()

    async def reconcile(self) -> list[str]:
        """Drop from the routing the versions no deployed application serves (after a
        restart of the stack, the Serve config's); what it dropped is logged and returned."""
        locked: list[ModelRole] = []
        try:
            for role in self._routing.configured.roles:
                if not await self._routing.lock(role, LOCK_TTL_S, holder=RECONCILE_HOLDER):
                    return []  # a change runs: its own steps keep routing and apps in step
                locked.append(role)
            routing = await self._routing.read(fresh=True)
            deployed = set(await self._serve.applications())
            kept, dropped = routing.served_by(deployed, self._routing.configured)
            if dropped:
                log.warning("model routing reset to deployed versions: %s", "; ".join(dropped))
                await self._routing.write(kept)
            return dropped
        except Exception as exc:  # Redis or the controller away: the routing stays as it is
            log.warning("model routing not checked against the deployed versions: %r", exc)
            return []
        finally:
            for role in locked:
                with contextlib.suppress(Exception):
                    await self._routing.unlock(role, holder=RECONCILE_HOLDER)

    async def status(self) -> dict[str, Any]:
        routing = await self._routing.read(fresh=True)
        roles: dict[str, Any] = {}
        for role, entry in routing.roles.items():
            last = await self._routing.status(role)
            canary = None
            if entry.canary is not None:
                canary = {
                    **entry.canary.model_dump(),
                    "sessions": await self._routing.canary_sessions(role),
                }
            roles[role] = {
                "active": entry.active.model_dump(),
                "configured": self._routing.configured.route(role) == entry.active,
                "canary": canary,
                # The role's last change: a swap, or a canary's start, promotion or rollback.
                "last_swap": last.model_dump() if last else None,
            }
        return {"roles": roles}

    async def swap(self, role: ModelRole, settings_json: dict[str, Any]) -> dict[str, Any]:
        """Start the swap and return at once (its progress: ``status``); ``ChangeRefused``
        when a change of this role runs or a canary of it does; a ``ValueError`` for a config
        that does not validate."""
        settings = LLMDeploymentSettings.model_validate(settings_json)
        if role not in self._routing.configured.roles:
            raise ValueError(f"this deployment serves no {role} model to swap")
        candidate = route_of(role, settings)
        if not await self._routing.lock(role, LOCK_TTL_S):
            raise ChangeRefused(await self._refusal(role))
        routing = await self._routing.read(fresh=True)
        if (canary := routing.canary(role)) is not None:
            await self._routing.unlock(role)
            raise ChangeRefused(
                f"a canary of {role} runs ({canary.candidate.version}): promote it or roll it "
                "back first"
            )
        current = routing.route(role)
        now = time.time()
        status = SwapStatus(
            role=role,
            state="deploying",
            candidate=candidate.version,
            previous=current.version if current else None,
            started_at=now,
            updated_at=now,
        )
        await self._routing.set_status(status)
        self._start(self._run_swap(status, candidate, settings.model_dump(mode="json")))
        return status.model_dump()

    async def _run_swap(
        self, status: SwapStatus, candidate: ModelRoute, settings_json: dict[str, Any]
    ) -> None:
        role = status.role
        step = self._stepper(status)
        try:
            routing = await self._routing.read(fresh=True)
            previous = routing.route(role)
            if previous == candidate:
                await step("unchanged", "this version already answers")
                return
            try:
                await self._bring_up(candidate, settings_json, step)
            except CandidateFailed as exc:
                await step("failed", f"the old version keeps answering: {exc}")
                return
            routing = await self._routing.read(fresh=True)
            moved = ModelRouting(roles={**routing.roles, role: RoleRouting(active=candidate)})
            await self._routing.write(moved)
            await step("switched", "new turns go to the new version")
            # Every gateway replica reads the routing again within ROUTING_CACHE_S; a turn
            # that read it just before goes on to the old version, which finishes it.
            await asyncio.sleep(ROUTING_CACHE_S * 3)
            if previous is not None and previous.app_name not in moved.apps_in_use():
                await step("draining", f"retiring {previous.app_name}")
                await self._serve.remove(previous.app_name)
            await step("done")
        except Exception as exc:  # the routing did not move, or moved and retiring failed
            log.exception("swap of %s failed", role)
            await step("failed", repr(exc))
        finally:
            await self._routing.unlock(role)

    async def canary(
        self,
        role: ModelRole,
        settings_json: dict[str, Any],
        share: int,
        seed: int | None = None,
    ) -> dict[str, Any]:
        """Start a canary and return at once (its progress: ``status``): the candidate comes
        up beside the active version, then ``share`` percent of the new sessions get it.
        ``ChangeRefused`` when a change of this role or a canary of it runs; a ``ValueError``
        for a config, role or share that is not one."""
        settings = LLMDeploymentSettings.model_validate(settings_json)
        if role not in CANARY_ROLES:
            raise ValueError(
                f"a canary splits the persona's sessions: {role} has none (swap it instead)"
            )
        if role not in self._routing.configured.roles:
            raise ValueError(f"this deployment serves no {role} model")
        if not MIN_SHARE <= share <= MAX_SHARE:
            raise ValueError(f"share: {MIN_SHARE}-{MAX_SHARE} percent of the new sessions")
        candidate = route_of(role, settings)
        canary = Canary(
            candidate=candidate,
            share=share,
            seed=secrets.randbelow(2**31) if seed is None else seed,
            started_at=time.time(),
        )
        routing = await self._routing.read(fresh=True)
        self._check(lambda: routing.with_canary(role, canary))
        if not await self._routing.lock(role, LOCK_TTL_S):
            raise ChangeRefused(await self._refusal(role))
        try:
            routing = await self._routing.read(fresh=True)
            self._check(lambda: routing.with_canary(role, canary))  # again, under the lock
            active = routing.route(role)
            assert active is not None  # with_canary: the role is served
            status = SwapStatus(
                role=role,
                kind="canary",
                state="deploying",
                candidate=candidate.version,
                previous=active.version,
                message=f"{canary.share}% of the new sessions, seed {canary.seed}",
                started_at=canary.started_at,
                updated_at=canary.started_at,
            )
            await self._routing.set_status(status)
        except BaseException:
            await self._routing.unlock(role)
            raise
        self._start(self._run_canary(status, canary, settings.model_dump(mode="json")))
        return {**status.model_dump(), "share": canary.share, "seed": canary.seed}

    async def _run_canary(
        self, status: SwapStatus, canary: Canary, settings_json: dict[str, Any]
    ) -> None:
        role, candidate = status.role, canary.candidate
        step = self._stepper(status)
        try:
            try:
                added = await self._bring_up(candidate, settings_json, step)
            except CandidateFailed as exc:
                await step("failed", f"nothing changed, the active version answers: {exc}")
                return
            try:
                moved = (await self._routing.read(fresh=True)).with_canary(role, canary)
            except ValueError as exc:  # not while the lock is held; never leave it up unused
                if added:
                    await self._serve.remove(candidate.app_name)
                await step("failed", f"nothing changed: {exc}")
                return
            await self._routing.reset_canary_sessions(role)
            await self._routing.write(moved)
            await step(
                "canary",
                f"{canary.share}% of the new sessions go to {candidate.version} "
                f"(seed {canary.seed})",
            )
        except Exception as exc:
            log.exception("canary of %s failed", role)
            await step("failed", repr(exc))
        finally:
            await self._routing.unlock(role)

    async def promote(self, role: ModelRole) -> dict[str, Any]:
        """The candidate answers every session, new and running (their next turn); the old
        active version is retired once every gateway has read that. ``ChangeRefused`` with
        no canary or while another change of the role runs."""
        return await self._end_canary(role, "promote")

    async def rollback(self, role: ModelRole) -> dict[str, Any]:
        """The active version answers every session, new and running (their next turn); the
        candidate is retired once every gateway has read that. ``ChangeRefused`` with no
        canary or while another change of the role runs."""
        return await self._end_canary(role, "rollback")

    async def _end_canary(
        self, role: ModelRole, kind: Literal["promote", "rollback"]
    ) -> dict[str, Any]:
        if not await self._routing.lock(role, LOCK_TTL_S):
            raise ChangeRefused(await self._refusal(role))
        try:
            routing = await self._routing.read(fresh=True)
            moved = self._check(
                lambda: routing.promoted(role) if kind == "promote" else routing.rolled_back(role)
            )
            canary, active = routing.canary(role), routing.route(role)
            assert canary is not None and active is not None  # promoted/rolled_back checked
            staying, leaving = (
                (canary.candidate, active) if kind == "promote" else (active, canary.candidate)
            )
            await self._routing.write(moved)
            now = time.time()
            status = SwapStatus(
                role=role,
                kind=kind,
                state="switched",
                candidate=staying.version,
                previous=leaving.version,
                message=f"every session's next turn goes to {staying.version}",
                started_at=now,
                updated_at=now,
            )
            await self._routing.set_status(status)
        except BaseException:
            await self._routing.unlock(role)
            raise
        self._start(self._retire(status, leaving))
        return status.model_dump()

    async def _retire(self, status: SwapStatus, leaving: ModelRoute) -> None:
        """After every gateway replica read the routing that no longer names ``leaving``, its
        application goes (unless the other role's version is the same application)."""
        step = self._stepper(status)
        try:
            await asyncio.sleep(ROUTING_CACHE_S * 3)
            in_use = (await self._routing.read(fresh=True)).apps_in_use()
            if leaving.app_name not in in_use:
                await step("draining", f"retiring {leaving.app_name}")
                await self._serve.remove(leaving.app_name)
            await step("done")
        except Exception as exc:  # the routing moved; the old application may be left
            log.exception("retiring %s failed", leaving.app_name)
            await step("failed", f"the routing moved, {leaving.app_name} not retired: {exc!r}")
        finally:
            await self._routing.unlock(status.role)

    async def replay(
        self,
        role: ModelRole,
        settings_json: dict[str, Any],
        sessions: list[StoredSession],
        turn_settings: ReplayTurnSettings,
        scope: str,
    ) -> dict[str, Any]:
        """Start replaying ``sessions`` (one company's, read by the caller as that company)
        against the version the config describes, and return at once (its progress and
        report: ``replay_status``). ``ChangeRefused`` while a change or a replay holds a
        role; a ``ValueError`` for a config, role or set of sessions that is not one."""
        settings = LLMDeploymentSettings.model_validate(settings_json)
        if role not in REPLAY_ROLES:
            raise ValueError(f"replies record the persona's version only: replay npc, not {role}")
        if role not in self._routing.configured.roles:
            raise ValueError(f"this deployment serves no {role} model")
        if self._replay_engine is None:
            raise ValueError("this deployment was built without the orchestrator to replay with")
        if not sessions:
            raise ValueError("sessions: no stored session with a trainee turn to replay")
        if len(sessions) > MAX_REPLAY_SESSIONS:
            raise ValueError(f"sessions: at most {MAX_REPLAY_SESSIONS}")
        tenants = {s.tenant_id for s in sessions}
        if len(tenants) != 1:
            raise ValueError("sessions: a replay is of one company's sessions")
        candidate = route_of(role, settings)
        replay_id = uuid.uuid4().hex
        holder = REPLAY_HOLDER + replay_id
        locked: list[ModelRole] = []
        # Both roles: the candidate must stay up, and the judge that scores both sides the same.
        for locking in self._routing.configured.roles:
            if not await self._routing.lock(locking, REPLAY_LOCK_TTL_S, holder):
                refusal = await self._refusal(locking)
                for taken in locked:
                    await self._routing.unlock(taken, holder)
                raise ChangeRefused(refusal)
            locked.append(locking)
        now = time.time()
        status = ReplayStatus(
            replay_id=replay_id,
            role=role,
            tenant_id=tenants.pop(),
            scope=scope,
            candidate=candidate.version,
            state="deploying",
            sessions_total=len(sessions),
            started_at=now,
            updated_at=now,
        )
        try:
            await self._replays.put(status)
        except BaseException:
            for taken in locked:
                await self._routing.unlock(taken, holder)
            raise
        self._start(
            self._run_replay(
                status, candidate, settings.model_dump(mode="json"), sessions, turn_settings
            )
        )
        return status.model_dump(mode="json", exclude={"report"})

    async def replay_status(self, replay_id: str) -> dict[str, Any] | None:
        found = await self._replays.get(replay_id)
        return found.model_dump(mode="json") if found else None

    async def _run_replay(
        self,
        status: ReplayStatus,
        candidate: ModelRoute,
        settings_json: dict[str, Any],
        sessions: list[StoredSession],
        turn_settings: ReplayTurnSettings,
    ) -> None:
        holder = REPLAY_HOLDER + status.replay_id
        roles = list(self._routing.configured.roles)

        async def step(state: ReplayState, message: str = "", **changes: Any) -> None:
            nonlocal status
            status = status.model_copy(
                update={"state": state, "message": message, "updated_at": time.time(), **changes}
            )
            log.info(
                "replay %s against %s: %s %s", status.replay_id, status.candidate, state, message
            )
            await self._replays.put(status)

        renewing = asyncio.create_task(self._keep_locks(roles, holder))
        added = False
        try:
            try:
                added = await self._bring_up(candidate, settings_json, step)
            except CandidateFailed as exc:
                await step(
                    "failed", f"the candidate did not come up; nothing served changed: {exc}"
                )
                return
            judge = (await self._routing.read(fresh=True)).route("judge")
            await step("replaying", f"0/{len(sessions)} sessions")
            replayed = await self._replay_sessions(
                status.replay_id, sessions, candidate, judge, turn_settings, step
            )
            report = build_report(
                replayed,
                role=status.role,
                candidate_version=candidate.version,
                judge_version=judge.version if judge else None,
                scope=status.scope,
                sessions_asked=status.sessions_total,
                started_at=status.started_at,
            )
            await step(
                "done",
                f"{report.replayed} sessions replayed, {report.failed} failed",
                sessions_done=len(replayed),
                report=report,
            )
        except Exception as exc:
            log.exception("replay %s failed", status.replay_id)
            await step("failed", repr(exc))
        finally:
            renewing.cancel()
            try:
                in_use = (await self._routing.read(fresh=True)).apps_in_use()
                if added and candidate.app_name not in in_use:  # a change may have routed to it
                    await self._serve.remove(candidate.app_name)
            except Exception:
                log.exception("replay %s: %s not removed", status.replay_id, candidate.app_name)
            for role in roles:
                await self._routing.unlock(role, holder)

    async def _replay_sessions(
        self,
        replay_id: str,
        sessions: list[StoredSession],
        candidate: ModelRoute,
        judge: ModelRoute | None,
        turn_settings: ReplayTurnSettings,
        step: Callable[..., Awaitable[None]],
    ) -> list[SessionReplay]:
        assert self._replay_engine is not None
        engine = self._replay_engine
        deadline = time.monotonic() + REPLAY_DEADLINE_S
        gate = asyncio.Semaphore(REPLAY_CONCURRENCY)
        done = 0

        async def one(stored: StoredSession) -> SessionReplay:
            nonlocal done
            async with gate:
                replayed = await replay_session(
                    engine,
                    stored,
                    candidate=candidate,
                    judge=judge,
                    settings=turn_settings,
                    # Its turns in the orchestrator's logs and traces, told from the session's.
                    tag=f"{stored.session_id}/replay-{replay_id[:8]}",
                    deadline=deadline,
                )
            done += 1
            await step("replaying", f"{done}/{len(sessions)} sessions", sessions_done=done)
            return replayed

        return list(await asyncio.gather(*(one(stored) for stored in sessions)))

    async def _keep_locks(self, roles: list[ModelRole], holder: str) -> None:
        while True:
            await asyncio.sleep(REPLAY_LOCK_TTL_S / 4)
            for role in roles:
                try:
                    if not await self._routing.renew_lock(role, REPLAY_LOCK_TTL_S, holder):
                        log.warning("%s lost the lock of %s", holder, role)
                except Exception as exc:  # Redis away for a moment: the next beat tries again
                    log.warning("%s: the lock of %s not renewed: %r", holder, role, exc)

    async def _refusal(self, role: ModelRole) -> str:
        """Why a change of ``role`` is refused while its lock is held: by a replay, or by
        another change."""
        holder = await self._routing.lock_holder(role)
        if holder and holder.startswith(REPLAY_HOLDER):
            return (
                f"a replay ({holder.removeprefix(REPLAY_HOLDER)}) is already running: the "
                f"versions of {role} stay as they are until it ends"
            )
        return f"a change of {role} is already running"

    @staticmethod
    def _check(transition: Callable[[], ModelRouting]) -> ModelRouting:
        """A transition of the routing, its state refusal as ``ChangeRefused`` (409)."""
        try:
            return transition()
        except CanaryStateError as exc:
            raise ChangeRefused(str(exc)) from None

    def _stepper(self, status: SwapStatus) -> Callable[..., Awaitable[None]]:
        """Records each step of a change in the role's status, and in the log."""

        async def step(state: str, message: str = "") -> None:
            nonlocal status
            status = status.model_copy(
                update={"state": state, "message": message, "updated_at": time.time()}
            )
            log.info(
                "%s of %s to %s: %s %s", status.kind, status.role, status.candidate, state, message
            )
            await self._routing.set_status(status)

        return step

    def _start(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _bring_up(
        self,
        candidate: ModelRoute,
        settings_json: dict[str, Any],
        step: Callable[..., Awaitable[None]],
    ) -> bool:
        """The candidate's application beside the others, running and answering; whether it
        was added (False: it runs already, as the other role's version). ``CandidateFailed``
        when it does not come up or answer, after removing what was added."""
        apps = await self._serve.applications()
        added = candidate.app_name not in apps
        if added:
            runtime_env = await self._serve.runtime_env()
            await self._serve.add(model_application(settings_json, candidate.app_name, runtime_env))
        try:
            await self._serve.wait_running(candidate.app_name, START_TIMEOUT_S)
            await step("probing")
            await self._probe(candidate)
        except Exception as exc:
            if added:
                await self._serve.remove(candidate.app_name)
            raise CandidateFailed(str(exc)) from exc
        return added

    async def _probe(self, route: ModelRoute) -> None:
        """The version answers: its health check, and one token of a chat."""
        from serve_apps.orchestrator.chat_engine import ServeLLMChatEngine

        handle = serve.get_deployment_handle(route.deployment_name, app_name=route.app_name)
        engine = ServeLLMChatEngine(handle, route.model_id, version=route.version)
        await asyncio.wait_for(engine.check_health(), 60)
        reply = ""
        async for delta in engine.stream_chat(
            [{"role": "user", "content": "Say hello."}], max_tokens=2, temperature=0
        ):
            reply += delta.text
        if not reply:
            raise RuntimeError("the candidate answered nothing")
