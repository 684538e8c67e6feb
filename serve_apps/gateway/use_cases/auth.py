"""Signing a user in: an access token and a stored refresh token."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from db import auth_repository as auth_repo
from serve_apps.gateway.auth import AccessClaims, AccessTokens, new_refresh_token, token_digest
from serve_apps.gateway.schemas.auth import TokenPairOut


async def token_pair(
    session: AsyncSession,
    tokens: AccessTokens,
    *,
    refresh_ttl_s: int,
    tenant_id: uuid.UUID,
    user_id: uuid.UUID,
    role: str,
) -> TokenPairOut:
    refresh = new_refresh_token(tenant_id)
    await auth_repo.store_refresh_token(
        session,
        tenant_id=tenant_id,
        user_id=user_id,
        token_sha256=token_digest(refresh),
        expires_at=datetime.now(UTC) + timedelta(seconds=refresh_ttl_s),
    )
    access = tokens.issue(AccessClaims(user_id=user_id, tenant_id=tenant_id, role=role))
    return TokenPairOut(
        access_token=access,
        expires_in=tokens.ttl_s,
        refresh_token=refresh,
        refresh_expires_in=refresh_ttl_s,
    )
