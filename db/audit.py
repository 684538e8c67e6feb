"""The audit log: one row per admin action, written in the same transaction as the action."""

from __future__ import annotations

import uuid
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


async def recent(session: AsyncSession, *, limit: int) -> list[AuditEvent]:
    return list(
        await session.scalars(select(AuditEvent).order_by(AuditEvent.id.desc()).limit(limit))
    )
