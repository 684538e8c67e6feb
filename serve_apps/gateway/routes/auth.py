"""Sign-in, token refresh and sign-out, accepting an invitation, the WebSocket ticket, and who
am I."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

from fastapi import APIRouter, Request, Response

from db import auth_repository as auth_repo
from db import people_repository as people
from db import repositories as repo
from db.engine import tenant_transaction
from db.models import User
from serve_apps.gateway.auth import (
    INVITE_PREFIX,
    InvalidTokenError,
    hash_password,
    needs_rehash,
    refresh_token_tenant,
    tenant_of_token,
    token_digest,
    verify_password,
)
from serve_apps.gateway.deps import CallerDep, StateDep, TenantSessionDep, client_address
from serve_apps.gateway.errors import APIError
from serve_apps.gateway.schemas.auth import (
    AcceptInviteRequest,
    LoginRequest,
    MeOut,
    RefreshRequest,
    TokenPairOut,
    WebSocketTicketOut,
)
from serve_apps.gateway.use_cases.auth import token_pair

log = logging.getLogger("salesboost.gateway")
router = APIRouter(tags=["auth"])

BAD_CREDENTIALS = "the email, password or company is wrong"


@router.post("/v1/auth/login", response_model=TokenPairOut)
async def login(body: LoginRequest, request: Request, state: StateDep) -> TokenPairOut:
    """Exchange a password for a short-lived access token and a refresh token."""
    await state.limits.check_ip(client_address(request))
    await state.limits.check_sign_in(body.tenant, body.email.lower())
    try:
        tenant_id = await repo.tenant_id_for_slug(state.sessions, slug=body.tenant)
    except repo.NotFoundError:
        # The same work as a wrong password. argon2 is slow by design (0.17-0.22 s of CPU
        # per check on 2 busy cores): in a worker thread, so that the conversations this
        # replica streams go on.
        await asyncio.to_thread(verify_password, None, body.password)
        raise APIError(401, "bad_credentials", BAD_CREDENTIALS) from None
    async with tenant_transaction(state.sessions, tenant_id) as session:
        try:
            user = await repo.user_by_email(session, email=body.email.lower())
        except repo.NotFoundError:
            user = None
        stored_hash = user.password_hash if user else None
        ok = await asyncio.to_thread(verify_password, stored_hash, body.password)
        if user is None or stored_hash is None or not ok or not user.active:
            raise APIError(401, "bad_credentials", BAD_CREDENTIALS)
        if needs_rehash(stored_hash):
            user.password_hash = await asyncio.to_thread(hash_password, body.password)
        pair = await token_pair(
            session, state.tokens, user, refresh_ttl_s=state.settings.refresh_token_ttl_s
        )
    log.info("user %s signed in", user.id)
    return pair


@router.post("/v1/auth/refresh", response_model=TokenPairOut)
async def refresh(body: RefreshRequest, request: Request, state: StateDep) -> TokenPairOut:
    """Trade a refresh token for a new pair; the old one stops working (rotation)."""
    await state.limits.check_ip(client_address(request))
    try:
        tenant_id = refresh_token_tenant(body.refresh_token)
    except InvalidTokenError:
        raise APIError(401, "invalid_refresh_token", "the refresh token is invalid") from None
    now = datetime.now(UTC)
    reused = False
    async with tenant_transaction(state.sessions, tenant_id) as session:
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
            pair = await token_pair(
                session, state.tokens, user, refresh_ttl_s=state.settings.refresh_token_ttl_s
            )
    if reused:
        log.warning("refresh token reused for user %s: all its tokens revoked", row.user_id)
        raise APIError(401, "invalid_refresh_token", "the refresh token is invalid")
    return pair


@router.post("/v1/auth/logout", status_code=204)
async def logout(body: RefreshRequest, state: StateDep) -> Response:
    """Revoke a refresh token (idempotent)."""
    try:
        tenant_id = refresh_token_tenant(body.refresh_token)
    except InvalidTokenError:
        return Response(status_code=204)
    async with tenant_transaction(state.sessions, tenant_id) as session:
        row = await auth_repo.refresh_token_for_update(
            session, token_sha256=token_digest(body.refresh_token)
        )
        if row is not None and row.revoked_at is None:
            row.revoked_at = datetime.now(UTC)
    return Response(status_code=204)


@router.post("/v1/auth/ws-ticket", response_model=WebSocketTicketOut)
async def ws_ticket(who: CallerDep, state: StateDep) -> WebSocketTicketOut:
    """A single-use ticket for opening a WebSocket (``?ticket=``), valid for seconds."""
    ticket = await state.identities.issue_ticket(who)
    return WebSocketTicketOut(ticket=ticket, expires_in=state.settings.ws_ticket_ttl_s)


@router.get("/v1/me", response_model=MeOut)
async def me(who: CallerDep, session: TenantSessionDep) -> MeOut:
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


@router.post("/v1/auth/accept-invite", response_model=TokenPairOut)
async def accept_invite(
    body: AcceptInviteRequest, request: Request, state: StateDep
) -> TokenPairOut:
    """Set the invited user's password (once) and sign them in."""
    await state.limits.check_ip(client_address(request))
    refused = APIError(401, "invalid_invitation", "the invitation is unknown, used or expired")
    try:
        tenant_id = tenant_of_token(INVITE_PREFIX, body.invitation_token)
    except InvalidTokenError:
        raise refused from None
    async with tenant_transaction(state.sessions, tenant_id) as session:
        invitation = await people.invitation_for_update(
            session, token_sha256=token_digest(body.invitation_token)
        )
        now = datetime.now(UTC)
        if invitation is None or invitation.accepted_at or invitation.expires_at <= now:
            raise refused
        user = await session.get(User, invitation.user_id)
        if user is None or not user.active:
            raise refused
        invitation.accepted_at = now
        user.password_hash = await asyncio.to_thread(hash_password, body.password)
        return await token_pair(
            session, state.tokens, user, refresh_ttl_s=state.settings.refresh_token_ttl_s
        )
