"""The audit log: writing an admin action (every mixin's writes come here) and reading it.

A mixin of the gateway deployment, like the knowledge and auth routes.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Query, Request

from db import audit
from db.engine import tenant_transaction
from serve_apps.gateway.api import api
from serve_apps.gateway.errors import request_id
from serve_apps.gateway.identity import Identity
from serve_apps.gateway.schemas import AuditEventOut


class AdminRoutes:
    # Provided by the gateway deployment this is mixed into.
    sessions: Any
    _identity_from: Any

    async def _audit(
        self, session: Any, who: Identity, request: Request, action: str, target: str, **details
    ) -> None:
        """Record an admin action in the transaction that makes it (both or neither)."""
        await audit.record(
            session,
            tenant_id=who.tenant_id,
            actor_user_id=who.user_id,
            action=action,
            target=target,
            details=details,
            request_id=request_id(request),
        )

    @api.get("/v1/audit-events", response_model=list[AuditEventOut], tags=["admin"])
    async def audit_events(
        self, request: Request, limit: Annotated[int, Query(ge=1, le=500)] = 50
    ) -> list[AuditEventOut]:
        """The company's most recent admin actions, newest first (admins only)."""
        who = await self._identity_from(request)
        who.require("admin")
        async with tenant_transaction(self.sessions, who.tenant_id) as session:
            events = await audit.recent(session, limit=limit)
        return [AuditEventOut.model_validate(e, from_attributes=True) for e in events]
