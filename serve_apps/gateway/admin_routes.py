"""The audit log: writing an admin action (every mixin's writes come here) and reading it.

A mixin of the gateway deployment, like the knowledge and auth routes.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import Query, Request

from db import audit
from db.engine import tenant_transaction
from serve_apps.gateway.api import api
from serve_apps.gateway.errors import APIError, request_id
from serve_apps.gateway.identity import Identity
from serve_apps.gateway.schemas import AUDIT_ACTION, AuditEventOut, StorableTime


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
        self,
        request: Request,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
        actor: Annotated[uuid.UUID | None, Query(description="The user who acted.")] = None,
        action: Annotated[
            str | None, Query(pattern=AUDIT_ACTION, description="One action: `team.create`.")
        ] = None,
        target: Annotated[
            str | None,
            Query(min_length=1, max_length=300, pattern=r"^[^\x00]+$", description="Contains."),
        ] = None,
        since: Annotated[
            StorableTime | None, Query(alias="from", description="At or after (ISO 8601).")
        ] = None,
        until: Annotated[StorableTime | None, Query(alias="to", description="Before.")] = None,
    ) -> list[AuditEventOut]:
        """The company's most recent admin actions, newest first (admins only); each filter
        given narrows them. A time without a zone is UTC."""
        who = await self._identity_from(request)
        who.require("admin")
        if since is not None and until is not None and until <= since:
            raise APIError(422, "invalid_request", "query.to: must be later than from")
        async with tenant_transaction(self.sessions, who.tenant_id) as session:
            events = await audit.recent(
                session,
                limit=limit,
                actor=actor,
                action=action,
                target=target,
                since=since,
                until=until,
            )
        return [AuditEventOut.model_validate(e, from_attributes=True) for e in events]
