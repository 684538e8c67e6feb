"""Which model version answers each role: one Redis document every gateway replica reads.

The lifecycle writes it after a new version is up and healthy; the gateway reads it (with a
short cache) for each turn, so a swap moves the next turn of every conversation at once, on
every replica. Without a document (a fresh deployment) the versions of the Serve config
answer. The document is small JSON; Redis keeps it across restarts where Redis persists
(the embedded one does).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from pydantic import BaseModel, ValidationError

from serve_apps.contracts.models import ModelRole, ModelRoute

log = logging.getLogger("salesboost.models")

ROUTING_KEY = "salesboost:model-routing"
SWAP_LOCK_KEY = "salesboost:model-swap:{role}"
SWAP_STATUS_KEY = "salesboost:model-swap-status:{role}"
# How long a gateway replica keeps the document before reading it again: a swap waits this
# out before it retires the old version, so no replica sends a turn to it after.
ROUTING_CACHE_S = 1.0


class RoleRouting(BaseModel):
    active: ModelRoute


class ModelRouting(BaseModel):
    roles: dict[ModelRole, RoleRouting]

    def route(self, role: ModelRole) -> ModelRoute | None:
        found = self.roles.get(role)
        return found.active if found else None

    def apps_in_use(self) -> set[str]:
        return {r.active.app_name for r in self.roles.values()}


class SwapStatus(BaseModel):
    """The last swap of a role: where it is, and why it stopped when it failed."""

    role: ModelRole
    state: str  # deploying, probing, switched, draining, done, failed, unchanged
    candidate: str
    previous: str | None = None
    message: str = ""
    started_at: float
    updated_at: float


class RoutingStore:
    """The routing document, the swap lock and the swap status, in Redis."""

    def __init__(self, redis: Any, configured: dict[ModelRole, ModelRoute]) -> None:
        self._redis = redis
        self._configured = ModelRouting(
            roles={role: RoleRouting(active=route) for role, route in configured.items()}
        )
        self._cached: tuple[float, ModelRouting] | None = None

    @property
    def configured(self) -> ModelRouting:
        return self._configured

    async def read(self, *, fresh: bool = False) -> ModelRouting:
        """The document (at most ``ROUTING_CACHE_S`` old unless ``fresh``), else the Serve
        config's versions; Redis away keeps the last one read."""
        now = time.monotonic()
        if not fresh and self._cached and now - self._cached[0] < ROUTING_CACHE_S:
            return self._cached[1]
        try:
            raw = await self._redis.get(ROUTING_KEY)
        except Exception as exc:
            log.warning("model routing not read: %r", exc)
            return self._cached[1] if self._cached else self._configured
        routing = self._configured
        if raw:
            try:
                stored = ModelRouting.model_validate_json(raw)
                routing = ModelRouting(roles={**self._configured.roles, **stored.roles})
            except ValidationError:
                log.error("model routing unreadable: the configured versions answer")
        self._cached = (now, routing)
        return routing

    async def write(self, routing: ModelRouting) -> None:
        await self._redis.set(ROUTING_KEY, routing.model_dump_json())
        self._cached = None

    async def lock(self, role: ModelRole, ttl_s: int) -> bool:
        return bool(await self._redis.set(SWAP_LOCK_KEY.format(role=role), "1", nx=True, ex=ttl_s))

    async def unlock(self, role: ModelRole) -> None:
        await self._redis.delete(SWAP_LOCK_KEY.format(role=role))

    async def set_status(self, status: SwapStatus) -> None:
        await self._redis.set(SWAP_STATUS_KEY.format(role=status.role), status.model_dump_json())

    async def status(self, role: ModelRole) -> SwapStatus | None:
        raw = await self._redis.get(SWAP_STATUS_KEY.format(role=role))
        return SwapStatus.model_validate_json(raw) if raw else None
