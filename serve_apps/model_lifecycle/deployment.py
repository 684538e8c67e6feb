"""The swap of a role's model version under live conversations, run inside the cluster.

    validate ─► lock the role ─► deploy the candidate's application beside the others
      ─► wait until it runs ─► probe it (health, one token) ─► route the role to it
      ─► wait out every gateway's routing cache ─► retire the old version's application
         (Serve lets its replicas finish the replies they hold) ─► unlock

Anything that fails before the routing moves leaves the old version answering: the candidate
is removed and the status says why. One replica holds the swaps (a Redis lock per role makes
a second swap of the same role a conflict, whichever replica or caller asks).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from ray import serve

from models.llm import LLMDeploymentSettings
from serve_apps.connections import Connections
from serve_apps.contracts.models import ModelRole, ModelRoute
from serve_apps.model_lifecycle.routing import (
    ROUTING_CACHE_S,
    ModelRouting,
    RoleRouting,
    RoutingStore,
    SwapStatus,
)
from serve_apps.model_lifecycle.serve_control import ServeControl, model_application
from serve_apps.telemetry.logs import configure_logging

log = logging.getLogger("ray.serve.salesboost.models")

# A CPU engine starts in about a minute on an idle machine, several under load.
START_TIMEOUT_S = 900
LOCK_TTL_S = START_TIMEOUT_S + 300


class SwapRefused(RuntimeError):
    """A swap of this role is already running (the HTTP API answers 409)."""


def route_of(role: ModelRole, settings: LLMDeploymentSettings) -> ModelRoute:
    return ModelRoute(
        role=role,
        version=settings.version,
        model_id=settings.model_id,
        app_name=settings.app_name,
        deployment_name=settings.deployment_name,
    )


@serve.deployment(name="ModelLifecycle", num_replicas=1, ray_actor_options={"num_cpus": 0})
class ModelLifecycle:
    def __init__(self, configured: dict[ModelRole, ModelRoute]) -> None:
        configure_logging("models")
        from redis.asyncio import Redis

        connections = Connections()
        if not connections.redis_url:
            raise ValueError("REDIS_URL must reach the model lifecycle replica")
        self._routing = RoutingStore(Redis.from_url(connections.redis_url), configured)
        self._serve = ServeControl()
        self._tasks: set[asyncio.Task[None]] = set()

    async def status(self) -> dict[str, Any]:
        routing = await self._routing.read(fresh=True)
        roles: dict[str, Any] = {}
        for role, entry in routing.roles.items():
            last = await self._routing.status(role)
            roles[role] = {
                "active": entry.active.model_dump(),
                "configured": self._routing.configured.route(role) == entry.active,
                "last_swap": last.model_dump() if last else None,
            }
        return {"roles": roles}

    async def swap(self, role: ModelRole, settings_json: dict[str, Any]) -> dict[str, Any]:
        """Start the swap and return at once (its progress: ``status``); ``SwapRefused`` when
        one of this role runs; a ``ValueError`` for a config that does not validate."""
        settings = LLMDeploymentSettings.model_validate(settings_json)
        if role not in self._routing.configured.roles:
            raise ValueError(f"this deployment serves no {role} model to swap")
        candidate = route_of(role, settings)
        if not await self._routing.lock(role, LOCK_TTL_S):
            raise SwapRefused(f"a swap of {role} is already running")
        current = (await self._routing.read(fresh=True)).route(role)
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
        task = asyncio.create_task(
            self._run_swap(status, candidate, settings.model_dump(mode="json"))
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return status.model_dump()

    async def _run_swap(
        self, status: SwapStatus, candidate: ModelRoute, settings_json: dict[str, Any]
    ) -> None:
        role = status.role

        async def step(state: str, message: str = "") -> None:
            nonlocal status
            status = status.model_copy(
                update={"state": state, "message": message, "updated_at": time.time()}
            )
            log.info("swap %s to %s: %s %s", role, candidate.version, state, message)
            await self._routing.set_status(status)

        try:
            routing = await self._routing.read(fresh=True)
            previous = routing.route(role)
            if previous == candidate:
                await step("unchanged", "this version already answers")
                return
            apps = await self._serve.applications()
            added = candidate.app_name not in apps
            if added:
                runtime_env = await self._serve.runtime_env()
                await self._serve.add(
                    model_application(settings_json, candidate.app_name, runtime_env)
                )
            try:
                await self._serve.wait_running(candidate.app_name, START_TIMEOUT_S)
                await step("probing")
                await self._probe(candidate)
            except Exception as exc:
                if added:
                    await self._serve.remove(candidate.app_name)
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
