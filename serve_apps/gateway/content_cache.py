"""The training content every turn reads, cached in Redis and invalidated on write.

A conversation reads its scenario, the scenario's personas and the company's compliance
rules again for each turn (beside storing it), so that an edit reaches the next turn's
prompt. They change rarely, so every gateway replica reads them from one Redis cache:

- Each company has a content generation (``salesboost:content-gen:<tenant>``). Every write
  through the content routes bumps it once its transaction has committed
  (``serve_apps.gateway.deps.content_written``, on the content router).
- An entry's key holds the company, the generation and what it caches, so after a bump the
  next read of every replica is a miss, at once; entries of older generations are never read
  again and expire (``ENTRY_TTL_S``).
- A read takes the generation and the entry in one round trip, before it loads the database
  on a miss: a load that raced a write is stored under the old generation, never served.
- A company whose generation is missing (new, or Redis lost the key) starts from the clock,
  a number no entry of an earlier generation has.

Redis away or slow: the content comes from the database (and a warning), never a failed turn.
Writes that do not go through the content routes (the seed, a migration, SQL by hand) are
seen once the entries they make stale expire.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, Literal, TypeVar

from opentelemetry import trace
from pydantic import BaseModel, ValidationError
from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db import training_repository as training
from db.engine import tenant_transaction
from db.models import Scenario
from db.repositories import NotFoundError
from serve_apps.contracts.specs import ComplianceRuleSpec
from serve_apps.contracts.turn import PersonaCard, ScenarioCard
from serve_apps.telemetry import tracing
from serve_apps.telemetry.metrics import product_metrics

log = logging.getLogger("salesboost.gateway.content")

# Long enough that a company's conversations read the database a few times an hour, short
# enough that a write made around the routes is seen within minutes.
ENTRY_TTL_S = 600
# A Redis that has not answered by then is away for this read: the database answers.
REDIS_TIMEOUT_S = 0.5
# The entries' layout: a release that changes it reads none of the last one's.
LAYOUT = "v1"

CacheKind = Literal["scenario"]
CacheResult = Literal["hit", "miss", "unavailable"]

# The company's generation (started from ARGV[3], the clock, when missing) and the entry of
# that generation, in one round trip. ARGV[1], ARGV[2]: the entry's key around its generation.
_READ = """
local generation = redis.call('GET', KEYS[1])
if not generation then
  generation = ARGV[3]
  redis.call('SET', KEYS[1], generation)
end
return {generation, redis.call('GET', ARGV[1] .. generation .. ARGV[2])}
"""

# The next generation (started from ARGV[1], the clock, when missing).
_BUMP = """
if not redis.call('GET', KEYS[1]) then redis.call('SET', KEYS[1], ARGV[1]) end
return redis.call('INCR', KEYS[1])
"""

Entry = TypeVar("Entry", bound=BaseModel)
# A scenario's content from the database: (company, scenario) → content.
ScenarioLoader = Callable[[uuid.UUID, uuid.UUID], Awaitable["ScenarioContent"]]


def generation_key(tenant_id: uuid.UUID) -> str:
    return f"salesboost:content-gen:{tenant_id}"


def entry_key_around_generation(
    tenant_id: uuid.UUID, kind: CacheKind, name: str
) -> tuple[str, str]:
    """An entry's key is ``<before><generation><after>``; the company is in every key."""
    return f"salesboost:content:{LAYOUT}:{tenant_id}:", f":{kind}:{name}"


def _fresh_generation() -> str:
    """Microseconds of the clock: above every generation counted up from an earlier start."""
    return str(time.time_ns() // 1000)


class CastMember(BaseModel):
    """A persona of a scenario: its row's id (who said a stored turn) and its card."""

    id: uuid.UUID
    card: PersonaCard


class ScenarioContent(BaseModel):
    """A scenario as every turn of its sessions reads it."""

    scenario: ScenarioCard
    knowledge_base: str | None
    customer_knowledge_base: str | None
    vendor_website_knowledge_base: str | None
    cast: list[CastMember]  # in speaking order, the lead first
    compliance_rules: list[ComplianceRuleSpec]  # the company's, for every scenario


async def load_scenario_content(
    sessions: async_sessionmaker[AsyncSession], tenant_id: uuid.UUID, scenario_id: uuid.UUID
) -> ScenarioContent:
    """From the database, in the company's transaction (row-level security)."""
    async with tenant_transaction(sessions, tenant_id) as session:
        scenario = await session.scalar(select(Scenario).where(Scenario.id == scenario_id))
        if scenario is None:
            raise NotFoundError(f"scenario {scenario_id}")
        rules = await training.compliance_rules(session)
        return ScenarioContent(
            scenario=ScenarioCard.model_validate(scenario, from_attributes=True),
            knowledge_base=scenario.knowledge_base,
            customer_knowledge_base=scenario.customer_knowledge_base,
            vendor_website_knowledge_base=scenario.vendor_website_knowledge_base,
            cast=[
                CastMember(
                    id=link.persona.id,
                    card=PersonaCard.model_validate(link.persona, from_attributes=True),
                )
                for link in scenario.personas
            ],
            compliance_rules=[
                ComplianceRuleSpec.model_validate(r, from_attributes=True) for r in rules
            ],
        )


class ContentCache:
    """The training content of every company, read through Redis; ``hits``, ``misses`` and
    ``unavailable`` count this replica's reads (the metric counts them for ops)."""

    def __init__(
        self,
        redis: Redis,
        load_scenario: ScenarioLoader,
        *,
        ttl_s: int = ENTRY_TTL_S,
        timeout_s: float = REDIS_TIMEOUT_S,
    ) -> None:
        self._redis = redis
        self._load_scenario = load_scenario
        self.ttl_s = ttl_s
        self.timeout_s = timeout_s
        self.hits = 0
        self.misses = 0
        self.unavailable = 0

    @classmethod
    def over(cls, redis: Redis, sessions: async_sessionmaker[AsyncSession]) -> ContentCache:
        """The product's: misses read the database."""

        async def load(tenant_id: uuid.UUID, scenario_id: uuid.UUID) -> ScenarioContent:
            return await load_scenario_content(sessions, tenant_id, scenario_id)

        return cls(redis, load)

    async def scenario(self, tenant_id: uuid.UUID, scenario_id: uuid.UUID) -> ScenarioContent:
        async def load() -> ScenarioContent:
            return await self._load_scenario(tenant_id, scenario_id)

        return await self._read(tenant_id, "scenario", str(scenario_id), ScenarioContent, load)

    async def invalidate(self, tenant_id: uuid.UUID) -> None:
        """After a write of the company's content has committed: every replica's next read
        of it is a miss."""
        await self._within(
            self._redis.eval(_BUMP, 1, generation_key(tenant_id), _fresh_generation())
        )

    async def _read(
        self,
        tenant_id: uuid.UUID,
        kind: CacheKind,
        name: str,
        model: type[Entry],
        load: Callable[[], Awaitable[Entry]],
    ) -> Entry:
        before, after = entry_key_around_generation(tenant_id, kind, name)
        try:
            generation, raw = await self._within(
                self._redis.eval(
                    _READ, 1, generation_key(tenant_id), before, after, _fresh_generation()
                )
            )
        except (RedisError, OSError) as exc:  # asyncio's TimeoutError is an OSError
            log.warning("content cache unavailable, reading the database: %r", exc)
            self._count(kind, "unavailable")
            return await load()
        if raw is not None:
            try:
                entry = model.model_validate_json(raw)
            except ValidationError as exc:  # not this release's layout: read it again
                # The count, not the errors: they quote the content.
                log.warning(
                    "content cache entry %s:%s not read: %d errors", kind, name, exc.error_count()
                )
            else:
                self._count(kind, "hit")
                return entry
        self._count(kind, "miss")
        entry = await load()
        key = before + _text(generation) + after
        try:
            await self._within(self._redis.set(key, entry.model_dump_json(), ex=self.ttl_s))
        except (RedisError, OSError) as exc:
            log.warning("content cache entry not stored: %r", exc)
        return entry

    async def _within(self, call: Awaitable[Any]) -> Any:
        return await asyncio.wait_for(call, self.timeout_s)

    def _count(self, kind: CacheKind, result: CacheResult) -> None:
        if result == "hit":
            self.hits += 1
        elif result == "miss":
            self.misses += 1
        else:
            self.unavailable += 1
        tracing.set_attributes(trace.get_current_span(), {"content_cache": result})
        product_metrics().content_cache.inc(1, tags={"kind": kind, "result": result})


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
