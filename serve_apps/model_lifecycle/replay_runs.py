"""A replay of stored sessions against a candidate version, run inside the cluster.

A replay brings the candidate up as a swap does (``candidates.py``) without routing anything
to it, runs stored sessions' trainee turns against it through the orchestrator
(``replay.py``), and removes it after unless it was served already. It holds the locks of
both roles while it runs: a swap, a canary, a promotion or a rollback would move or retire
what it uses (``changes.py``).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from models.llm import LLMDeploymentSettings
from serve_apps.contracts.models import ModelRole, ModelRoute
from serve_apps.contracts.replay import MAX_REPLAY_SESSIONS, ReplayTurnSettings, StoredSession
from serve_apps.model_lifecycle.background import TaskSet
from serve_apps.model_lifecycle.candidates import CandidateFailed, Candidates
from serve_apps.model_lifecycle.changes import REPLAY_HOLDER, ChangeRefused, refusal, route_of
from serve_apps.model_lifecycle.replay import (
    REPLAY_CONCURRENCY,
    REPLAY_DEADLINE_S,
    ReplayEngine,
    ReplayState,
    ReplayStatus,
    ReplayStore,
    SessionReplay,
    build_report,
    replay_session,
)
from serve_apps.model_lifecycle.routing import RoutingStore
from serve_apps.model_lifecycle.serve_control import ServeControl

log = logging.getLogger("ray.serve.salesboost.models")

# Stored replies record the persona's version: it is the one a replay compares.
REPLAY_ROLES: tuple[ModelRole, ...] = ("npc",)
# A replay's locks lapse this long after its replica stops renewing them (it renews them at a
# quarter of it), so that a replica that died with one does not hold the roles for long.
REPLAY_LOCK_TTL_S = 120


class Replays:
    """Starts replays, runs them in the background, and answers their status."""

    def __init__(
        self,
        routing: RoutingStore,
        replays: ReplayStore,
        replay_engine: ReplayEngine | None,
        serve_control: ServeControl,
        candidates: Candidates,
        tasks: TaskSet,
    ) -> None:
        self._routing = routing
        self._replays = replays
        self._replay_engine = replay_engine
        self._serve = serve_control
        self._candidates = candidates
        self._tasks = tasks

    async def start(
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
                refused = await refusal(self._routing, locking)
                for taken in locked:
                    await self._routing.unlock(taken, holder)
                raise ChangeRefused(refused)
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
        self._tasks.start(
            self._run(status, candidate, settings.model_dump(mode="json"), sessions, turn_settings)
        )
        return status.model_dump(mode="json", exclude={"report"})

    async def status(self, replay_id: str) -> dict[str, Any] | None:
        found = await self._replays.get(replay_id)
        return found.model_dump(mode="json") if found else None

    async def _run(
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
                added = await self._candidates.bring_up(candidate, settings_json, step)
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
