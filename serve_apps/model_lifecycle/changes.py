"""The changes of a role's model versions under live conversations: the swap, the canary and
its promotion or rollback, and the check of the routing against the deployed applications.

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

Anything that fails before the routing moves leaves the old version answering: the candidate
is removed and the status says why (``candidates.py``). One replica holds the changes (a
Redis lock per role makes a second change of the same role a conflict, whichever replica or
caller asks; a running canary makes a swap or another canary of its role one).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any, Literal

from models.llm import LLMDeploymentSettings
from serve_apps.contracts.models import ModelRole, ModelRoute
from serve_apps.model_lifecycle.background import TaskSet
from serve_apps.model_lifecycle.candidates import START_TIMEOUT_S, CandidateFailed, Candidates
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
from serve_apps.model_lifecycle.serve_control import ServeControl

log = logging.getLogger("ray.serve.salesboost.models")
# Who holds a role's lock while the routing is checked against the deployed applications.
RECONCILE_HOLDER = "the check of the routing at start"

# A change holds its role's lock while its candidate starts, and a while more.
LOCK_TTL_S = START_TIMEOUT_S + 300


class ChangeRefused(RuntimeError):
    """Another change of this role's versions runs, or the role's state does not allow this
    one: a swap or a canary while a canary runs, a promote or rollback with none (the HTTP
    API answers 409)."""


# A canary splits the persona's sessions: the judge answers many agents in a turn, for every
# session alike, and is swapped.
CANARY_ROLES: tuple[ModelRole, ...] = ("npc",)
# A replay holds the roles' locks as this and its id (replay_runs.py): a refusal names it.
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


async def refusal(routing: RoutingStore, role: ModelRole) -> str:
    """Why a change of ``role`` is refused while its lock is held: by a replay, or by
    another change."""
    holder = await routing.lock_holder(role)
    if holder and holder.startswith(REPLAY_HOLDER):
        return (
            f"a replay ({holder.removeprefix(REPLAY_HOLDER)}) is already running: the "
            f"versions of {role} stay as they are until it ends"
        )
    return f"a change of {role} is already running"


class VersionChanges:
    """The swap, the canary, its promotion and rollback, and the routing's check at start."""

    def __init__(
        self,
        routing: RoutingStore,
        serve_control: ServeControl,
        candidates: Candidates,
        tasks: TaskSet,
    ) -> None:
        self._routing = routing
        self._serve = serve_control
        self._candidates = candidates
        self._tasks = tasks

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
            raise ChangeRefused(await refusal(self._routing, role))
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
        self._tasks.start(self._run_swap(status, candidate, settings.model_dump(mode="json")))
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
                await self._candidates.bring_up(candidate, settings_json, step)
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
            raise ChangeRefused(await refusal(self._routing, role))
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
        self._tasks.start(self._run_canary(status, canary, settings.model_dump(mode="json")))
        return {**status.model_dump(), "share": canary.share, "seed": canary.seed}

    async def _run_canary(
        self, status: SwapStatus, canary: Canary, settings_json: dict[str, Any]
    ) -> None:
        role, candidate = status.role, canary.candidate
        step = self._stepper(status)
        try:
            try:
                added = await self._candidates.bring_up(candidate, settings_json, step)
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
            raise ChangeRefused(await refusal(self._routing, role))
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
        self._tasks.start(self._retire(status, leaving))
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
