"""Which model version answers each role: one Redis document every gateway replica reads.

The lifecycle writes it after a new version is up and healthy; the gateway reads it (with a
short cache) for each turn, so a swap moves the next turn of every conversation at once, on
every replica. Without a document (a fresh deployment) the versions of the Serve config
answer. The document is small JSON; Redis keeps it across restarts where Redis persists
(the embedded one does).

A role may also hold a canary: a candidate version that a share of the *new sessions* get.
Which one a session gets is drawn once, when it starts, from a hash of its id and the
canary's seed, and stored with the session (``training_sessions.npc_model``); each turn of
the session then asks the document for that version (``route_for``), which answers with it
for as long as it is served, and with the active version once it is not (the canary was
promoted or rolled back, or a swap replaced it).
"""

from __future__ import annotations

import hashlib
import logging
import time
import uuid
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError

from serve_apps.contracts.models import ModelRole, ModelRoute

log = logging.getLogger("salesboost.models")

ROUTING_KEY = "salesboost:model-routing"
SWAP_LOCK_KEY = "salesboost:model-swap:{role}"
SWAP_STATUS_KEY = "salesboost:model-swap-status:{role}"
# The sessions each version of a running canary was given (a Redis hash: version -> count),
# counted by the gateway as it starts them; emptied when a canary starts.
CANARY_SESSIONS_KEY = "salesboost:model-canary-sessions:{role}"
# The lock's holder checked and acted on in one step (a lapsed lock may be another's now).
_RENEW_IF_HELD = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('EXPIRE', KEYS[1], ARGV[2]) end
return 0
"""
_DELETE_IF_HELD = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
# How long a gateway replica keeps the document before reading it again: a swap waits this
# out before it retires the old version, so no replica sends a turn to it after.
ROUTING_CACHE_S = 1.0


class CanaryStateError(ValueError):
    """A canary change that the role's state does not allow: a canary while one runs, a
    promote or a rollback with none (the HTTP API answers 409)."""


# A canary's share of the new sessions, in percent: both versions get some.
MIN_SHARE, MAX_SHARE = 1, 99
# A draw is the first 8 bytes of a SHA-256 read as a fraction of 2**64: uniform, and the same
# on every replica and in every Python process (``hash()`` is salted per process).
_DRAW_SPACE = 2**64


def canary_draw(session_id: uuid.UUID | str, seed: int) -> float:
    """Where a session falls in [0, 100): a canary of share ``s`` takes the draws below ``s``."""
    digest = hashlib.sha256(f"{seed}:{session_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") * 100 / _DRAW_SPACE


class Canary(BaseModel):
    """A candidate version that a share of the new sessions of a role get."""

    candidate: ModelRoute
    share: int = Field(
        ge=MIN_SHARE, le=MAX_SHARE, description="Percent of the new sessions it gets."
    )
    seed: int = Field(ge=0, description="Draws are a hash of the session id and this.")
    started_at: float

    def takes(self, session_id: uuid.UUID | str) -> bool:
        return canary_draw(session_id, self.seed) < self.share


class RoleRouting(BaseModel):
    active: ModelRoute
    canary: Canary | None = None

    def serving(self) -> list[ModelRoute]:
        """The versions that answer this role's turns: the active one, and a candidate."""
        return [self.active] + ([self.canary.candidate] if self.canary else [])


class ModelRouting(BaseModel):
    roles: dict[ModelRole, RoleRouting]

    def route(self, role: ModelRole) -> ModelRoute | None:
        """The role's active version: what a session without a version of its own gets."""
        found = self.roles.get(role)
        return found.active if found else None

    def canary(self, role: ModelRole) -> Canary | None:
        found = self.roles.get(role)
        return found.canary if found else None

    def assign(self, role: ModelRole, session_id: uuid.UUID | str) -> ModelRoute | None:
        """The version a new session gets: the candidate when a canary's draw takes it."""
        found = self.roles.get(role)
        if found is None:
            return None
        if found.canary is not None and found.canary.takes(session_id):
            return found.canary.candidate
        return found.active

    def route_for(self, role: ModelRole, assigned: str | None) -> ModelRoute | None:
        """The version that answers a turn of a session given ``assigned`` when it started:
        that one while it is served, else the active one."""
        found = self.roles.get(role)
        if found is None:
            return None
        if found.canary is not None and assigned == found.canary.candidate.version:
            return found.canary.candidate
        return found.active

    def apps_in_use(self) -> set[str]:
        return {route.app_name for entry in self.roles.values() for route in entry.serving()}

    def serving(self) -> list[ModelRoute]:
        """Every version that answers turns now (what readiness checks)."""
        return [route for entry in self.roles.values() for route in entry.serving()]

    def served_by(
        self, deployed: set[str], configured: ModelRouting
    ) -> tuple[ModelRouting, list[str]]:
        """This routing with only versions whose applications are deployed, and what it
        dropped: a role whose active version's application is gone answers from the Serve
        config again (its canary too goes); a canary whose candidate's is gone ends.

        A restart starts the Serve config's applications, while Redis may keep a routing
        that named others (a swapped-in version, a canary's candidate), whose turns would
        then fail.
        """
        roles, dropped = dict(self.roles), []
        for role, entry in self.roles.items():
            if entry.active.app_name not in deployed:
                fallback = configured.roles.get(role)
                dropped.append(f"{role}: {entry.active.version} is not deployed")
                if fallback is None:
                    del roles[role]
                else:
                    roles[role] = fallback
            elif entry.canary and entry.canary.candidate.app_name not in deployed:
                dropped.append(
                    f"{role}: the canary's {entry.canary.candidate.version} is not deployed"
                )
                roles[role] = RoleRouting(active=entry.active)
        return ModelRouting(roles=roles), dropped

    # The canary's transitions: each returns the routing after it, or raises
    # ``CanaryStateError`` when the role's state does not allow it.

    def with_canary(self, role: ModelRole, canary: Canary) -> ModelRouting:
        entry = self._entry(role)
        if entry.canary is not None:
            raise CanaryStateError(
                f"a canary of {role} runs ({entry.canary.candidate.version}): promote it or "
                "roll it back first"
            )
        if canary.candidate.version == entry.active.version:
            # Bad input rather than a conflict: there would be nothing to compare.
            raise ValueError(f"{canary.candidate.version} already answers {role}")
        return self._with(role, RoleRouting(active=entry.active, canary=canary))

    def promoted(self, role: ModelRole) -> ModelRouting:
        """The candidate answers every session; the old active version answers none."""
        canary = self._running_canary(role)
        return self._with(role, RoleRouting(active=canary.candidate))

    def rolled_back(self, role: ModelRole) -> ModelRouting:
        """The active version answers every session; the candidate answers none."""
        self._running_canary(role)
        return self._with(role, RoleRouting(active=self._entry(role).active))

    def _entry(self, role: ModelRole) -> RoleRouting:
        entry = self.roles.get(role)
        if entry is None:
            raise CanaryStateError(f"this deployment serves no {role} model")
        return entry

    def _running_canary(self, role: ModelRole) -> Canary:
        canary = self._entry(role).canary
        if canary is None:
            raise CanaryStateError(f"no canary of {role} runs")
        return canary

    def _with(self, role: ModelRole, entry: RoleRouting) -> ModelRouting:
        return ModelRouting(roles={**self.roles, role: entry})


class SwapStatus(BaseModel):
    """The last change of a role's versions (a swap, or a canary's start, promotion or
    rollback): where it is, and why it stopped when it failed."""

    role: ModelRole
    kind: Literal["swap", "canary", "promote", "rollback"] = "swap"
    # swap: deploying, probing, switched, draining, done | failed | unchanged
    # canary: deploying, probing, canary (running) | failed
    # promote, rollback: switched, draining, done | failed
    state: str
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

    async def lock(self, role: ModelRole, ttl_s: int, holder: str = "change") -> bool:
        """The role's lock for ``holder`` (what the refusal of another change names)."""
        key = SWAP_LOCK_KEY.format(role=role)
        return bool(await self._redis.set(key, holder, nx=True, ex=ttl_s))

    async def lock_holder(self, role: ModelRole) -> str | None:
        raw = await self._redis.get(SWAP_LOCK_KEY.format(role=role))
        return _text(raw) if raw is not None else None

    async def renew_lock(self, role: ModelRole, ttl_s: int, holder: str) -> bool:
        """Another ``ttl_s`` for ``holder``'s lock; False when it is no longer theirs."""
        key = SWAP_LOCK_KEY.format(role=role)
        return bool(await self._redis.eval(_RENEW_IF_HELD, 1, key, holder, ttl_s))

    async def unlock(self, role: ModelRole, holder: str | None = None) -> None:
        """Release the role's lock; with ``holder``, only while it is theirs (one that
        lapsed and was taken by another change stays that change's)."""
        key = SWAP_LOCK_KEY.format(role=role)
        if holder is None:
            await self._redis.delete(key)
        else:
            await self._redis.eval(_DELETE_IF_HELD, 1, key, holder)

    async def set_status(self, status: SwapStatus) -> None:
        await self._redis.set(SWAP_STATUS_KEY.format(role=status.role), status.model_dump_json())

    async def status(self, role: ModelRole) -> SwapStatus | None:
        raw = await self._redis.get(SWAP_STATUS_KEY.format(role=role))
        return SwapStatus.model_validate_json(raw) if raw else None

    async def count_canary_session(self, role: ModelRole, version: str) -> None:
        await self._redis.hincrby(CANARY_SESSIONS_KEY.format(role=role), version, 1)

    async def canary_sessions(self, role: ModelRole) -> dict[str, int]:
        raw = await self._redis.hgetall(CANARY_SESSIONS_KEY.format(role=role))
        return {_text(k): int(v) for k, v in raw.items()}

    async def reset_canary_sessions(self, role: ModelRole) -> None:
        await self._redis.delete(CANARY_SESSIONS_KEY.format(role=role))


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
