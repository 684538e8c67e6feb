"""Admission control: past a limit of live conversations, new ones are refused early.

An engine that takes more conversations than it can answer in time makes every one of them
slow, the running ones included; one that refuses the extra ones at once keeps the running
ones within their SLO and tells the newcomers when to come back. So a new training session
(``POST /v1/sessions``) or a conversation socket opened for a session that is not live is
refused with ``503 overloaded`` and ``Retry-After`` (on the socket: an ``overloaded`` error
event, then close code 1013) while the live conversations are at the limit; a conversation
that is live is never refused.

The live conversations are a Redis sorted set shared by every gateway replica: each open
socket's session id, scored by its last heartbeat. One that stops beating (its replica died)
lapses after three beats. The limit comes from the configuration
(``max_live_conversations``); ops may lower or raise it at run time
(``salesboost operator admission-limit``), kept in Redis beside the set.
"""

from __future__ import annotations

import time

from redis.asyncio import Redis

from serve_apps.gateway.errors import APIError
from serve_apps.telemetry.metrics import product_metrics

LIVE_KEY = "salesboost:admission:live"
LIMIT_KEY = "salesboost:admission:limit"

# Drop the lapsed, then admit ARGV[3] when it is live already or there is room; atomic, so
# two replicas never both take the last place. Returns 1 (admitted) or 0 (full).
_ADMIT = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
local limit = tonumber(redis.call('GET', KEYS[2]) or ARGV[4])
if redis.call('ZSCORE', KEYS[1], ARGV[3]) or redis.call('ZCARD', KEYS[1]) < limit then
  redis.call('ZADD', KEYS[1], ARGV[2], ARGV[3])
  return 1
end
return 0
"""

# Whether a new conversation would be admitted now, without taking a place.
_ROOM = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
local limit = tonumber(redis.call('GET', KEYS[2]) or ARGV[2])
if redis.call('ZCARD', KEYS[1]) < limit then return 1 end
return 0
"""


class Overloaded(APIError):
    def __init__(self, retry_after_s: int) -> None:
        super().__init__(
            503,
            "overloaded",
            f"every place for a live conversation is taken; try again in {retry_after_s} s",
            headers={"Retry-After": str(retry_after_s)},
        )
        self.retry_after_s = retry_after_s


class Admission:
    def __init__(
        self,
        redis: Redis,
        *,
        limit: int,
        heartbeat_s: float = 10.0,
        retry_after_s: int = 15,
    ) -> None:
        self._redis = redis
        self.limit = limit
        self.heartbeat_s = heartbeat_s
        self.retry_after_s = retry_after_s

    def _lapsed_before(self, now: float) -> float:
        return now - 3 * self.heartbeat_s

    async def check_room(self) -> None:
        """Raise :class:`Overloaded` when a new conversation would not be admitted now."""
        now = time.time()
        room = await self._redis.eval(
            _ROOM, 2, LIVE_KEY, LIMIT_KEY, self._lapsed_before(now), self.limit
        )
        if not int(room):
            product_metrics().admission_refused.inc(1, tags={"at": "new_session"})
            raise Overloaded(self.retry_after_s)

    async def admit(self, session_id: str) -> bool:
        """Take (or keep) a place for a live conversation; False when all are taken."""
        now = time.time()
        admitted = await self._redis.eval(
            _ADMIT, 2, LIVE_KEY, LIMIT_KEY, self._lapsed_before(now), now, session_id, self.limit
        )
        if not int(admitted):
            product_metrics().admission_refused.inc(1, tags={"at": "conversation"})
        return bool(int(admitted))

    async def heartbeat(self, session_id: str) -> None:
        await self._redis.zadd(LIVE_KEY, {session_id: time.time()})

    async def leave(self, session_id: str) -> None:
        await self._redis.zrem(LIVE_KEY, session_id)

    async def live(self) -> int:
        now = time.time()
        return int(await self._redis.zcount(LIVE_KEY, self._lapsed_before(now), "+inf"))


async def set_limit_override(redis: Redis, limit: int | None) -> None:
    """Ops' run-time limit over the configured one; None goes back to the configuration."""
    if limit is None:
        await redis.delete(LIMIT_KEY)
    else:
        await redis.set(LIMIT_KEY, int(limit))


async def current_limit_override(redis: Redis) -> int | None:
    value = await redis.get(LIMIT_KEY)
    return int(value) if value is not None else None
