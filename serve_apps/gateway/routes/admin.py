"""The audit log of admin actions (the routes that act write it through ``AuditDep``)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query

from db import audit
from serve_apps.gateway.deps import AdminDep, TenantSessionDep
from serve_apps.gateway.errors import APIError
from serve_apps.gateway.schemas.admin import AUDIT_ACTION, AuditEventOut, StorableTime

router = APIRouter(tags=["admin"])


@router.get("/v1/audit-events", response_model=list[AuditEventOut])
async def audit_events(
    who: AdminDep,
    session: TenantSessionDep,
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
    if since is not None and until is not None and until <= since:
        raise APIError(422, "invalid_request", "query.to: must be later than from")
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
