"""The audit log: one row per admin action, written in the same transaction as the action."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import AuditEvent


async def record(
    session: AsyncSession,
    *,
    tenant_id: uuid.UUID,
    actor_user_id: uuid.UUID | None,
    action: str,
    target: str,
    details: dict[str, Any] | None = None,
    request_id: str | None = None,
) -> None:
    session.add(
        AuditEvent(
            tenant_id=tenant_id,
            actor_user_id=actor_user_id,
            action=action,
            target=target[:300],
            details=details or {},
            request_id=request_id,
        )
    )


async def recent(
    session: AsyncSession,
    *,
    limit: int,
    actor: uuid.UUID | None = None,
    action: str | None = None,
    target: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[AuditEvent]:
    """Newest first; each filter given narrows it: the actor, the action, a target that
    contains ``target`` (any case), created at ``since`` or later and before ``until``."""
    query = select(AuditEvent).order_by(AuditEvent.id.desc()).limit(limit)
    if actor is not None:
        query = query.where(AuditEvent.actor_user_id == actor)
    if action is not None:
        query = query.where(AuditEvent.action == action)
    if target is not None:
        query = query.where(AuditEvent.target.icontains(target, autoescape=True))
    if since is not None:
        query = query.where(AuditEvent.created_at >= since)
    if until is not None:
        query = query.where(AuditEvent.created_at < until)
    return list(await session.scalars(query))
