"""Which embedder builds new knowledge-base versions and which reranker scores searches: a
small Redis record each, beside the lock and the status of a change of them.

Neither decides which embedder a *search* uses: that is the one the searched version records
(``retrieval/knowledge_base.py``), so a search is right whatever Redis holds. The active
embedder is the one new versions are built by (a knowledge base's first upload, a re-index);
without a record (a fresh deployment, or Redis emptied) it is the Serve config's. The active
reranker is read by the knowledge service for each search (cached for a second).
"""

from __future__ import annotations

import logging
import secrets
import time
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError

from models.encoders import EncoderDeploymentSettings
from retrieval.embedder import EmbedderRecord

log = logging.getLogger("salesboost.knowledge")

EncoderKind = Literal["embedder", "reranker"]
ACTIVE_KEY = "salesboost:encoder-active:{kind}"
LOCK_KEY = "salesboost:encoder-change-lock:{kind}"
STATUS_KEY = "salesboost:encoder-change-status:{kind}"
# How long a knowledge service replica keeps the active reranker before reading it again: a
# reranker swap waits this out (three times) before it calls itself done.
ROUTING_CACHE_S = 1.0
# A change holds its lock this long past its last sign of life: a replica that dies during a
# rebuild frees the lock within it (the change is then shown as interrupted).
LOCK_TTL_S = 120

_RENEW = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('expire', KEYS[1], ARGV[2]) else return 0 end"  # noqa: E501
_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end"  # noqa: E501

FINAL_STATES = ("done", "partial", "failed", "unchanged", "interrupted")


def active_settings_now(
    kind: EncoderKind, redis_url: str | None
) -> EncoderDeploymentSettings | None:
    """The active version's settings, read once with a short wait (an encoder replica that
    starts loads it beside its configured one, so that its first search after a swap does not
    wait for a model to load); None when there is none or Redis does not answer."""
    if not redis_url:
        return None
    try:
        from redis import Redis

        client = Redis.from_url(redis_url, socket_timeout=2, socket_connect_timeout=2)
        try:
            raw = client.get(ACTIVE_KEY.format(kind=kind))
        finally:
            client.close()
        if not raw:
            return None
        if kind == "embedder":
            record = EmbedderRecord.model_validate_json(raw)
            return EncoderDeploymentSettings.model_validate(record.settings)
        return EncoderDeploymentSettings.model_validate_json(raw)
    except Exception as exc:
        log.warning("the active %s was not read: %r", kind, exc)
        return None


class BaseFailure(BaseModel):
    """A knowledge base a change left on its live version, and why."""

    tenant_id: str
    knowledge_base: str
    live_version: int | None = None
    reason: str


class EncoderChange(BaseModel):
    """The last change of the embedder or the reranker: where it is, and what it did."""

    kind: EncoderKind
    action: Literal["swap", "restore"] = "swap"
    # probing, rebuilding (embedder), switched (reranker) | done, partial (some knowledge
    # bases failed and stay on their live version), failed (nothing changed), unchanged,
    # interrupted (the replica running it went away: see the knowledge bases' versions)
    state: str
    candidate: str
    previous: str | None = None
    message: str = ""
    started_at: float
    updated_at: float
    knowledge_bases: int = Field(0, description="Knowledge bases the change had to move.")
    switched: int = Field(0, description="Those moved to a version of the candidate.")
    failures: list[BaseFailure] = Field(
        default_factory=list, description="Those left on their live version, and why."
    )


class EncoderRoutingStore:
    """The active embedder and reranker, and their changes' locks and statuses, in Redis
    (``redis``: an asyncio client; None: only the Serve config's, and no changes)."""

    def __init__(
        self,
        redis: Any | None,
        *,
        embedder: EncoderDeploymentSettings,
        reranker: EncoderDeploymentSettings | None,
    ) -> None:
        self._redis = redis
        self.configured_embedder = embedder.embedder_record()
        self.configured_reranker = reranker
        self._reranker_cache: tuple[float, EncoderDeploymentSettings | None] | None = None
        self._embedder_cache: tuple[float, EmbedderRecord] | None = None

    @property
    def can_change(self) -> bool:
        return self._redis is not None

    # --- what is active -------------------------------------------------------------------

    async def active_embedder(self, *, fresh: bool = False) -> EmbedderRecord:
        """The embedder new versions are built by."""
        now = time.monotonic()
        if not fresh and self._embedder_cache and now - self._embedder_cache[0] < ROUTING_CACHE_S:
            return self._embedder_cache[1]
        record = self.configured_embedder
        raw = await self._get(ACTIVE_KEY.format(kind="embedder"))
        if raw:
            try:
                record = EmbedderRecord.model_validate_json(raw)
            except ValidationError:
                log.error("the active embedder's record is unreadable: the configured one builds")
        self._embedder_cache = (now, record)
        return record

    async def set_active_embedder(self, record: EmbedderRecord) -> None:
        assert self._redis is not None
        await self._redis.set(ACTIVE_KEY.format(kind="embedder"), record.model_dump_json())
        self._embedder_cache = None

    async def active_reranker(self, *, fresh: bool = False) -> EncoderDeploymentSettings | None:
        """The reranker that scores searches (None: late interaction in Qdrant, the CPU
        default with no cross-encoder configured)."""
        now = time.monotonic()
        if not fresh and self._reranker_cache and now - self._reranker_cache[0] < ROUTING_CACHE_S:
            return self._reranker_cache[1]
        active = self.configured_reranker
        raw = await self._get(ACTIVE_KEY.format(kind="reranker"))
        if raw:
            try:
                active = EncoderDeploymentSettings.model_validate_json(raw)
            except ValidationError:
                log.error("the active reranker's record is unreadable: the configured one scores")
        if active is not None and not active.is_cross_encoder:
            active = None
        self._reranker_cache = (now, active)
        return active

    async def set_active_reranker(self, settings: EncoderDeploymentSettings) -> None:
        assert self._redis is not None
        await self._redis.set(
            ACTIVE_KEY.format(kind="reranker"), settings.model_dump_json(exclude_defaults=True)
        )
        self._reranker_cache = None

    async def _get(self, key: str) -> bytes | str | None:
        if self._redis is None:
            return None
        try:
            return await self._redis.get(key)
        except Exception as exc:  # Redis away: the last one read, else the Serve config's
            log.warning("encoder routing not read: %r", exc)
            return None

    # --- one change of each at a time -----------------------------------------------------

    async def lock(self, kind: EncoderKind) -> str | None:
        """A token when this caller now holds ``kind``'s change lock; None when another does."""
        assert self._redis is not None
        token = secrets.token_hex(8)
        taken = await self._redis.set(LOCK_KEY.format(kind=kind), token, nx=True, ex=LOCK_TTL_S)
        return token if taken else None

    async def renew(self, kind: EncoderKind, token: str) -> bool:
        assert self._redis is not None
        key = LOCK_KEY.format(kind=kind)
        return bool(await self._redis.eval(_RENEW, 1, key, token, LOCK_TTL_S))

    async def unlock(self, kind: EncoderKind, token: str) -> None:
        assert self._redis is not None
        await self._redis.eval(_RELEASE, 1, LOCK_KEY.format(kind=kind), token)

    async def locked(self, kind: EncoderKind) -> bool:
        if self._redis is None:
            return False
        return bool(await self._redis.exists(LOCK_KEY.format(kind=kind)))

    # --- what the last change did -------------------------------------------------------------

    async def set_status(self, change: EncoderChange) -> None:
        assert self._redis is not None
        await self._redis.set(STATUS_KEY.format(kind=change.kind), change.model_dump_json())

    async def status(self, kind: EncoderKind) -> EncoderChange | None:
        """The last change of ``kind``; one still under way whose lock has lapsed is shown
        as interrupted (the replica running it went away)."""
        raw = await self._get(STATUS_KEY.format(kind=kind))
        if not raw:
            return None
        change = EncoderChange.model_validate_json(raw)
        if change.state not in FINAL_STATES and not await self.locked(kind):
            change = change.model_copy(
                update={
                    "state": "interrupted",
                    "message": "the knowledge service stopped during the change; knowledge "
                    "bases it had not moved stay on their live version: run it again",
                }
            )
        return change
