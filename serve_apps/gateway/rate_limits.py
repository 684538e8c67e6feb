"""Rate limits in Redis: requests per IP, per user and per tenant, and model tokens per tenant.

Request limits are sliding-window counters (Cloudflare's estimate): a counter per one-minute
window, and a request counts the current window plus the previous one weighted by how much
of it still lies within the last minute. A fixed window alone lets a caller send twice the
limit across a window's edge (ten password guesses at :59 and ten more at :00); the
estimate does not. Every replica shares the counters; a refused request counts too, so
hammering keeps the door shut. Over a limit the caller gets 429 with ``Retry-After``: the
seconds until a request would pass again if none came meanwhile.

The token budget is per tenant and per UTC day (a fixed window on purpose: it is a daily
allowance), counted after each reply and checked before the next one starts.
"""

from __future__ import annotations

import math
import time
import uuid

from redis.asyncio import Redis

from serve_apps.gateway.errors import APIError
from serve_apps.telemetry.metrics import product_metrics

PREFIX = "salesboost:rl:"
DAY_S = 86_400
MINUTE_S = 60


def seconds_until_allowed(
    *, previous: int, current: int, elapsed_s: float, window_s: int, limit: int
) -> int:
    """When the next request passes the sliding-window estimate, if no request comes meanwhile.

    ``current`` already includes the refused request; ``elapsed_s`` is the time since the
    current window began. Whole seconds, at least 1 (what ``Retry-After`` carries).
    """
    room = limit - current - 1  # what the previous window's weight must fall to, this window
    if room >= 0 and previous > 0:
        passes_at = (1 - room / previous) * window_s
        wait = passes_at - elapsed_s
    else:  # only in the next window, once this window's weight has fallen far enough
        weight_left = max(0.0, 1 - (limit - 1) / current) if current else 0.0
        wait = window_s - elapsed_s + weight_left * window_s
    return max(1, math.ceil(wait))


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

    async def _hit(self, what: str, bucket: str, key: str, limit: int) -> None:
        """Count a request against ``key``'s limit; over it, refuse (``bucket`` names the kind
        of limit in the metrics: a bounded label, unlike the key)."""
        now = time.time()
        window = int(now - now % MINUTE_S)
        current_key = f"{PREFIX}{key}:{window}"
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.incr(current_key)
            pipe.expire(current_key, 2 * MINUTE_S + 5)  # read again as the previous window
            pipe.get(f"{PREFIX}{key}:{window - MINUTE_S}")
            current, _, previous = await pipe.execute()
        elapsed_s = now - window
        previous = int(previous or 0)
        estimate = current + previous * (1 - elapsed_s / MINUTE_S)
        if estimate > limit:
            product_metrics().rate_limited.inc(1, tags={"limit": bucket})
            raise RateLimited(
                what,
                seconds_until_allowed(
                    previous=previous,
                    current=int(current),
                    elapsed_s=elapsed_s,
                    window_s=MINUTE_S,
                    limit=limit,
                ),
            )

    async def check_ip(self, ip: str | None) -> None:
        await self._hit("requests from this address", "ip", f"ip:{ip or 'unknown'}", self.per_ip)

    async def check_sign_in(self, tenant: str, email: str) -> None:
        """Password guesses against one account, from anywhere."""
        # The tenant as hex: the sign-in form's tenant may contain ":", so "a:b" + "c@x" and
        # "a" + "b:c@x" (an email may contain ":" too) would otherwise be one account's key.
        account = f"login:{tenant.encode().hex()}:{email}"
        await self._hit("sign-in attempts for this account", "sign_in", account, 10)

    async def check_caller(self, tenant_id: uuid.UUID, user_id: uuid.UUID) -> None:
        await self._hit("requests from this user", "user", f"user:{user_id}", self.per_user)
        await self._hit(
            "requests from this company", "tenant", f"tenant:{tenant_id}", self.per_tenant
        )

    async def check_token_budget(self, tenant_id: uuid.UUID) -> None:
        now = int(time.time())
        day = now - now % DAY_S
        used = await self._redis.get(f"{PREFIX}tokens:{tenant_id}:{day}")
        if used is not None and int(used) >= self.tenant_tokens_per_day:
            product_metrics().rate_limited.inc(1, tags={"limit": "tokens"})
            raise RateLimited("model tokens used by this company today", day + DAY_S - now)

    async def spend_tokens(self, tenant_id: uuid.UUID, tokens: int) -> None:
        if tokens > 0:
            await self._count(f"tokens:{tenant_id}", DAY_S, tokens)
