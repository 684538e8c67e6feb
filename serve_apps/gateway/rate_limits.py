"""Rate limits in Redis: requests per IP, per user and per tenant, and model tokens per tenant.

Fixed one-minute windows (one ``INCR`` and ``EXPIRE`` per key and request), shared by every
gateway replica. Over a limit the caller gets 429 with ``Retry-After`` (seconds to the next
window); the token budget is per tenant and per UTC day, counted after each reply and
checked before the next one starts.
"""

from __future__ import annotations

import time
import uuid

from redis.asyncio import Redis

from serve_apps.gateway.errors import APIError

PREFIX = "salesboost:rl:"
DAY_S = 86_400


class RateLimited(APIError):
    def __init__(self, what: str, retry_after_s: int) -> None:
        super().__init__(
            429,
            "rate_limited",
            f"too many {what}; try again in {retry_after_s} s",
            headers={"Retry-After": str(retry_after_s)},
        )
        self.retry_after_s = retry_after_s


class RateLimiter:
    def __init__(
        self,
        redis: Redis,
        *,
        per_ip_per_min: int,
        per_user_per_min: int,
        per_tenant_per_min: int,
        tenant_tokens_per_day: int,
    ) -> None:
        self._redis = redis
        self.per_ip = per_ip_per_min
        self.per_user = per_user_per_min
        self.per_tenant = per_tenant_per_min
        self.tenant_tokens_per_day = tenant_tokens_per_day

    async def _count(self, key: str, window_s: int, amount: int = 1) -> tuple[int, int]:
        """Add ``amount`` to this window's counter: (new total, seconds left in the window)."""
        now = int(time.time())
        window = now - now % window_s
        full_key = f"{PREFIX}{key}:{window}"
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.incrby(full_key, amount)
            pipe.expire(full_key, window_s + 5)
            total, _ = await pipe.execute()
        return int(total), window + window_s - now

    async def _hit(self, what: str, key: str, limit: int) -> None:
        total, left = await self._count(key, 60)
        if total > limit:
            raise RateLimited(what, max(1, left))

    async def check_ip(self, ip: str | None) -> None:
        await self._hit("requests from this address", f"ip:{ip or 'unknown'}", self.per_ip)

    async def check_sign_in(self, tenant: str, email: str) -> None:
        """Password guesses against one account, from anywhere."""
        # The tenant as hex: the sign-in form's tenant may contain ":", so "a:b" + "c@x" and
        # "a" + "b:c@x" (an email may contain ":" too) would otherwise be one account's key.
        account = f"login:{tenant.encode().hex()}:{email}"
        await self._hit("sign-in attempts for this account", account, 10)

    async def check_caller(self, tenant_id: uuid.UUID, user_id: uuid.UUID) -> None:
        await self._hit("requests from this user", f"user:{user_id}", self.per_user)
        await self._hit("requests from this company", f"tenant:{tenant_id}", self.per_tenant)

    async def check_token_budget(self, tenant_id: uuid.UUID) -> None:
        now = int(time.time())
        day = now - now % DAY_S
        used = await self._redis.get(f"{PREFIX}tokens:{tenant_id}:{day}")
        if used is not None and int(used) >= self.tenant_tokens_per_day:
            raise RateLimited("model tokens used by this company today", day + DAY_S - now)

    async def spend_tokens(self, tenant_id: uuid.UUID, tokens: int) -> None:
        if tokens > 0:
            await self._count(f"tokens:{tenant_id}", DAY_S, tokens)
