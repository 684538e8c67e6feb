"""Refresh tokens, as rows. Every function runs inside the token's tenant transaction."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import RefreshToken


async def store_refresh_token(
    session: AsyncSession,
    *,
    tenant_id: uuid.UUID,
    user_id: uuid.UUID,
    token_sha256: str,
    expires_at: datetime,
) -> None:
    session.add(
        RefreshToken(
            tenant_id=tenant_id, user_id=user_id, token_sha256=token_sha256, expires_at=expires_at
        )
    )


async def refresh_token_for_update(
    session: AsyncSession, *, token_sha256: str
) -> RefreshToken | None:
    """The token row, locked until the transaction ends, so two refreshes cannot both win."""
    return await session.scalar(
        select(RefreshToken).where(RefreshToken.token_sha256 == token_sha256).with_for_update()
    )


async def revoke_all_for_user(session: AsyncSession, *, user_id: uuid.UUID, now: datetime) -> None:
    await session.execute(
        update(RefreshToken)
        .where(RefreshToken.user_id == user_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=now)
    )
