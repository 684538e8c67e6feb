"""Who is calling: a bearer access token over HTTP, a single-use ticket on the WebSocket.

Development mode also accepts ``X-Dev-Tenant`` / ``X-Dev-User`` (or ``dev_tenant`` /
``dev_user`` on the WebSocket) to act as a seeded user without a password, for the demo,
the terminal client and the tests; production mode refuses them.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import asdict, dataclass

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db import repositories as repo
from db.engine import tenant_transaction
from serve_apps.gateway.auth import AccessTokens, InvalidTokenError, new_ws_ticket
from serve_apps.gateway.errors import APIError

DEMO_TENANT = "demo"
DEMO_USER = "trainee@demo.salesboost.local"
TICKET_PREFIX = "salesboost:ws-ticket:"


@dataclass(frozen=True)
class Identity:
    tenant_id: uuid.UUID
    user_id: uuid.UUID
    role: str

    def require(self, *roles: str) -> None:
        """Refuse (403) unless this user has one of ``roles``."""
        if self.role not in roles:
            raise APIError(403, "forbidden", f"this needs one of the roles: {', '.join(roles)}")


def _unauthenticated(message: str) -> APIError:
    return APIError(401, "unauthenticated", message)


class IdentityResolver:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        redis: Redis,
        tokens: AccessTokens,
        *,
        mode: str,
        ticket_ttl_s: int,
    ) -> None:
        self._sessions = sessions
        self._redis = redis
        self._tokens = tokens
        self._mode = mode
        self._ticket_ttl_s = ticket_ttl_s
        self._dev_cache: dict[tuple[str, str], Identity] = {}

    async def from_headers(
        self, authorization: str | None, dev_tenant: str | None, dev_user: str | None
    ) -> Identity:
        if authorization:
            scheme, _, token = authorization.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise _unauthenticated("use 'Authorization: Bearer <access token>'")
            try:
                claims = self._tokens.verify(token.strip())
            except InvalidTokenError as exc:
                raise _unauthenticated(str(exc)) from None
            return Identity(tenant_id=claims.tenant_id, user_id=claims.user_id, role=claims.role)
        return await self.development_identity(dev_tenant, dev_user)

    async def development_identity(self, tenant_slug: str | None, email: str | None) -> Identity:
        if self._mode != "development":
            raise _unauthenticated("sign-in is required")
        key = ((tenant_slug or DEMO_TENANT)[:64], (email or DEMO_USER)[:320])
        if key in self._dev_cache:
            return self._dev_cache[key]
        try:
            tenant_id = await repo.tenant_id_for_slug(self._sessions, slug=key[0])
            async with tenant_transaction(self._sessions, tenant_id) as session:
                user = await repo.user_by_email(session, email=key[1])
        except repo.NotFoundError:
            raise _unauthenticated("unknown development identity") from None
        if not user.active:
            raise _unauthenticated("this account is deactivated")
        identity = Identity(tenant_id=tenant_id, user_id=user.id, role=user.role.value)
        self._dev_cache[key] = identity
        return identity

    # --- WebSocket tickets ---------------------------------------------------------------

    async def issue_ticket(self, who: Identity) -> str:
        ticket = new_ws_ticket()
        body = json.dumps({k: str(v) for k, v in asdict(who).items()})
        await self._redis.set(TICKET_PREFIX + ticket, body, ex=self._ticket_ttl_s)
        return ticket

    async def redeem_ticket(self, ticket: str) -> Identity:
        """The identity a ticket was issued to; the ticket is gone afterwards (single use)."""
        if not ticket or len(ticket) > 128:
            raise _unauthenticated("invalid ticket")
        body = await self._redis.getdel(TICKET_PREFIX + ticket)
        if body is None:
            raise _unauthenticated("the ticket is unknown, used or expired")
        data = json.loads(body)
        return Identity(
            tenant_id=uuid.UUID(data["tenant_id"]),
            user_id=uuid.UUID(data["user_id"]),
            role=data["role"],
        )
