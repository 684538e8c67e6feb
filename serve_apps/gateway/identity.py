"""Who is calling. Until accounts exist, development mode acts as a seeded user.

``X-Dev-Tenant`` / ``X-Dev-User`` (or the ``dev_tenant`` / ``dev_user`` query parameters on
the WebSocket, which browsers cannot give headers) pick another seeded user; production mode
accepts neither and refuses the request.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db import repositories as repo
from db.engine import tenant_transaction
from serve_apps.gateway.errors import APIError

DEMO_TENANT = "demo"
DEMO_USER = "trainee@demo.salesboost.local"


@dataclass(frozen=True)
class Identity:
    tenant_id: uuid.UUID
    user_id: uuid.UUID
    email: str
    role: str

    def require(self, *roles: str) -> None:
        """Refuse (403) unless this user has one of ``roles``."""
        if self.role not in roles:
            raise APIError(403, "forbidden", f"this needs one of the roles: {', '.join(roles)}")


class IdentityResolver:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], *, mode: str) -> None:
        self._sessions = sessions
        self._mode = mode
        self._cache: dict[tuple[str, str], Identity] = {}

    async def resolve(self, tenant_slug: str | None, email: str | None) -> Identity:
        if self._mode != "development":
            raise APIError(401, "unauthenticated", "sign-in is required")
        key = ((tenant_slug or DEMO_TENANT)[:64], (email or DEMO_USER)[:320])
        if key in self._cache:
            return self._cache[key]
        try:
            tenant_id = await repo.tenant_id_for_slug(self._sessions, slug=key[0])
            async with tenant_transaction(self._sessions, tenant_id) as session:
                user = await repo.user_by_email(session, email=key[1])
        except repo.NotFoundError:
            raise APIError(401, "unauthenticated", "unknown development identity") from None
        identity = Identity(
            tenant_id=tenant_id, user_id=user.id, email=user.email, role=user.role.value
        )
        self._cache[key] = identity
        return identity
