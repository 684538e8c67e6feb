"""The changes of a role's model versions under live conversations, run inside the cluster.

``ModelLifecycle`` is the Serve deployment the gateway and the CLI call; it delegates to its
parts, each in a module of its own:

- ``candidates.py``: a candidate version's application brought up beside the others, running
  and answering (deploy ─► wait until it runs ─► probe it), or removed again;
- ``changes.py``: the swap, the canary and its promotion or rollback, each under the role's
  lock, and the check of the routing against the deployed applications at start;
- ``replay_runs.py``: a replay of stored sessions against a candidate that nothing routes to,
  under the locks of both roles (``replay.py``: its turns and its report).
"""

from __future__ import annotations

from typing import Any

from ray import serve

from serve_apps.connections import Connections
from serve_apps.contracts.models import ModelRole, ModelRoute
from serve_apps.contracts.replay import ReplayTurnSettings, StoredSession
from serve_apps.model_lifecycle.background import TaskSet
from serve_apps.model_lifecycle.candidates import Candidates
from serve_apps.model_lifecycle.changes import VersionChanges
from serve_apps.model_lifecycle.replay import ReplayEngine, ReplayStore, ServeReplayEngine
from serve_apps.model_lifecycle.replay_runs import Replays
from serve_apps.model_lifecycle.routing import RoutingStore
from serve_apps.model_lifecycle.serve_control import ServeControl
from serve_apps.telemetry.logs import configure_logging


@serve.deployment(name="ModelLifecycle", num_replicas=1, ray_actor_options={"num_cpus": 0})
class ModelLifecycle:
    """The role changes are ``VersionChanges``'s, the replays ``Replays``'s: both share the
    routing store, the Serve controller, the candidates' bring-up and the background tasks."""

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
        routing = RoutingStore(redis, configured)
        replays = ReplayStore(redis)
        # A replay sends its turns to the orchestrator, as the gateway sends live ones.
        replay_engine: ReplayEngine | None = (
            ServeReplayEngine(orchestrator, knowledge) if orchestrator is not None else None
        )
        self._assemble(routing, replays, replay_engine, ServeControl())
        # The constructor runs on the replica's event loop.
        self._tasks.start(self._reconcile_at_start())

    def _assemble(
        self,
        routing: RoutingStore,
        replays: ReplayStore,
        replay_engine: ReplayEngine | None,
        serve_control: ServeControl,
    ) -> None:
        """The parts, on the stores, the replay engine and the Serve controller given (the
        unit tests give fakes)."""
        self._routing = routing
        self._replays = replays
        self._replay_engine = replay_engine
        self._serve = serve_control
        self._tasks = TaskSet()
        self._candidates = Candidates(serve_control)
        self._changes = VersionChanges(routing, serve_control, self._candidates, self._tasks)
        self._replay_runs = Replays(
            routing, replays, replay_engine, serve_control, self._candidates, self._tasks
        )

    async def _reconcile_at_start(self) -> None:
        await self.reconcile()

    async def reconcile(self) -> list[str]:
        return await self._changes.reconcile()

    async def status(self) -> dict[str, Any]:
        return await self._changes.status()

    async def swap(self, role: ModelRole, settings_json: dict[str, Any]) -> dict[str, Any]:
        return await self._changes.swap(role, settings_json)

    async def canary(
        self,
        role: ModelRole,
        settings_json: dict[str, Any],
        share: int,
        seed: int | None = None,
    ) -> dict[str, Any]:
        return await self._changes.canary(role, settings_json, share, seed)

    async def promote(self, role: ModelRole) -> dict[str, Any]:
        return await self._changes.promote(role)

    async def rollback(self, role: ModelRole) -> dict[str, Any]:
        return await self._changes.rollback(role)

    async def replay(
        self,
        role: ModelRole,
        settings_json: dict[str, Any],
        sessions: list[StoredSession],
        turn_settings: ReplayTurnSettings,
        scope: str,
    ) -> dict[str, Any]:
        return await self._replay_runs.start(role, settings_json, sessions, turn_settings, scope)

    async def replay_status(self, replay_id: str) -> dict[str, Any] | None:
        return await self._replay_runs.status(replay_id)
