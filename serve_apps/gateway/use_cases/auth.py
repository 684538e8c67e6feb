"""Signing a user in: an access token and a stored refresh token."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from db import auth_repository as auth_repo
from db.models import User
from serve_apps.gateway.auth import AccessClaims, AccessTokens, new_refresh_token, token_digest
from serve_apps.gateway.schemas.auth import TokenPairOut


async def token_pair(
    session: AsyncSession, tokens: AccessTokens, user: User, *, refresh_ttl_s: int
) -> TokenPairOut:
    refresh = new_refresh_token(user.tenant_id)
    await auth_repo.store_refresh_token(
        session,
        tenant_id=user.tenant_id,
        user_id=user.id,
        token_sha256=token_digest(refresh),
        expires_at=datetime.now(UTC) + timedelta(seconds=refresh_ttl_s),
    )
    access = tokens.issue(
        AccessClaims(user_id=user.id, tenant_id=user.tenant_id, role=user.role.value)
    )
    return TokenPairOut(
        access_token=access,
        expires_in=tokens.ttl_s,
        refresh_token=refresh,
        refresh_expires_in=refresh_ttl_s,
    )
