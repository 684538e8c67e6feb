"""Sign-in, token refresh and sign-out, the WebSocket ticket, and who am I.

A mixin of the gateway deployment, like the knowledge routes.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import Request, Response

from db import auth_repository as auth_repo
from db import repositories as repo
from db.engine import tenant_transaction
from serve_apps.gateway.api import api
from serve_apps.gateway.auth import (
    AccessClaims,
    AccessTokens,
    InvalidTokenError,
    hash_password,
    needs_rehash,
    new_refresh_token,
    refresh_token_tenant,
    token_digest,
    verify_password,
)
from serve_apps.gateway.errors import APIError
from serve_apps.gateway.schemas import (
    LoginRequest,
    MeOut,
    RefreshRequest,
    TokenPairOut,
    WebSocketTicketOut,
)

log = logging.getLogger("salesboost.gateway")

BAD_CREDENTIALS = "the email, password or company is wrong"


class AuthRoutes:
    # Provided by the gateway deployment this is mixed into.
    sessions: Any
    settings: Any
    tokens: AccessTokens
    identities: Any
    limits: Any
    _identity_from: Any

    async def _token_pair(self, *, tenant_id, user_id, role: str, session: Any) -> TokenPairOut:
        refresh = new_refresh_token(tenant_id)
        await auth_repo.store_refresh_token(
            session,
            tenant_id=tenant_id,
            user_id=user_id,
            token_sha256=token_digest(refresh),
            expires_at=datetime.now(UTC) + timedelta(seconds=self.settings.refresh_token_ttl_s),
        )
        access = self.tokens.issue(AccessClaims(user_id=user_id, tenant_id=tenant_id, role=role))
        return TokenPairOut(
            access_token=access,
            expires_in=self.tokens.ttl_s,
            refresh_token=refresh,
            refresh_expires_in=self.settings.refresh_token_ttl_s,
        )

    @api.post("/v1/auth/login", response_model=TokenPairOut, tags=["auth"])
    async def login(self, body: LoginRequest, request: Request) -> TokenPairOut:
        """Exchange a password for a short-lived access token and a refresh token."""
        await self.limits.check_ip(request.client.host if request.client else None)
        await self.limits.check_sign_in(body.tenant, body.email.lower())
        try:
            tenant_id = await repo.tenant_id_for_slug(self.sessions, slug=body.tenant)
        except repo.NotFoundError:
            # The same work as a wrong password. argon2 is slow by design (0.17-0.22 s of CPU
            # per check on 2 busy cores): in a worker thread, so that the conversations this
            # replica streams go on.
            await asyncio.to_thread(verify_password, None, body.password)
            raise APIError(401, "bad_credentials", BAD_CREDENTIALS) from None
        async with tenant_transaction(self.sessions, tenant_id) as session:
            try:
                user = await repo.user_by_email(session, email=body.email.lower())
            except repo.NotFoundError:
                user = None
            ok = await asyncio.to_thread(
                verify_password, user.password_hash if user else None, body.password
            )
            if user is None or not ok or not user.active:
                raise APIError(401, "bad_credentials", BAD_CREDENTIALS)
            if needs_rehash(user.password_hash):
                user.password_hash = await asyncio.to_thread(hash_password, body.password)
            pair = await self._token_pair(
                tenant_id=tenant_id, user_id=user.id, role=user.role.value, session=session
            )
        log.info("user %s signed in", user.id)
        return pair

    @api.post("/v1/auth/refresh", response_model=TokenPairOut, tags=["auth"])
    async def refresh(self, body: RefreshRequest, request: Request) -> TokenPairOut:
        """Trade a refresh token for a new pair; the old one stops working (rotation)."""
        await self.limits.check_ip(request.client.host if request.client else None)
        try:
            tenant_id = refresh_token_tenant(body.refresh_token)
        except InvalidTokenError:
            raise APIError(401, "invalid_refresh_token", "the refresh token is invalid") from None
        now = datetime.now(UTC)
        reused = False
        async with tenant_transaction(self.sessions, tenant_id) as session:
            row = await auth_repo.refresh_token_for_update(
                session, token_sha256=token_digest(body.refresh_token)
            )
            if row is None or row.expires_at <= now:
                raise APIError(401, "invalid_refresh_token", "the refresh token is invalid")
            if row.revoked_at is not None:
                # A rotated token came back: someone holds a copy. End all of this user's.
                await auth_repo.revoke_all_for_user(session, user_id=row.user_id, now=now)
                reused = True
            else:
                row.revoked_at = now
                user = await repo.user_by_id(session, user_id=row.user_id)
                if not user.active:
                    raise APIError(401, "invalid_refresh_token", "this account is deactivated")
                pair = await self._token_pair(
                    tenant_id=tenant_id, user_id=user.id, role=user.role.value, session=session
                )
        if reused:
            log.warning("refresh token reused for user %s: all its tokens revoked", row.user_id)
            raise APIError(401, "invalid_refresh_token", "the refresh token is invalid")
        return pair

    @api.post("/v1/auth/logout", status_code=204, tags=["auth"])
    async def logout(self, body: RefreshRequest) -> Response:
        """Revoke a refresh token (idempotent)."""
        try:
            tenant_id = refresh_token_tenant(body.refresh_token)
        except InvalidTokenError:
            return Response(status_code=204)
        async with tenant_transaction(self.sessions, tenant_id) as session:
            row = await auth_repo.refresh_token_for_update(
                session, token_sha256=token_digest(body.refresh_token)
            )
            if row is not None and row.revoked_at is None:
                row.revoked_at = datetime.now(UTC)
        return Response(status_code=204)

    @api.post("/v1/auth/ws-ticket", response_model=WebSocketTicketOut, tags=["auth"])
    async def ws_ticket(self, request: Request) -> WebSocketTicketOut:
        """A single-use ticket for opening a WebSocket (``?ticket=``), valid for seconds."""
        who = await self._identity_from(request)
        ticket = await self.identities.issue_ticket(who)
        return WebSocketTicketOut(ticket=ticket, expires_in=self.settings.ws_ticket_ttl_s)

    @api.get("/v1/me", response_model=MeOut, tags=["auth"])
    async def me(self, request: Request) -> MeOut:
        who = await self._identity_from(request)
        async with tenant_transaction(self.sessions, who.tenant_id) as session:
            try:
                user = await repo.user_by_id(session, user_id=who.user_id)
            except repo.NotFoundError:
                raise APIError(401, "unauthenticated", "this account no longer exists") from None
            return MeOut(
                user_id=user.id,
                tenant_id=user.tenant_id,
                email=user.email,
                display_name=user.display_name,
                role=user.role.value,
            )
