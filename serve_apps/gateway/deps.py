"""The dependencies a route declares: the replica's clients, the caller, a role, a tenant
transaction, the audit log.

A dependency runs before FastAPI validates the route's own parameters and body: a caller
who is not signed in, rate limited or lacks the role is refused before a bad body is.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import HTTPConnection

from db import audit
from db.engine import tenant_transaction
from serve_apps.gateway.errors import request_id
from serve_apps.gateway.identity import Identity
from serve_apps.gateway.state import GatewayState

EDITORS = ("admin", "manager")

log = logging.getLogger("salesboost.gateway")


async def gateway_state(connection: HTTPConnection) -> GatewayState:
    state: GatewayState = connection.app.state.gateway
    return state


StateDep = Annotated[GatewayState, Depends(gateway_state)]


def client_address(request: Request) -> str | None:
    return request.client.host if request.client else None


async def caller(request: Request, state: StateDep) -> Identity:
    """The caller, after the per-address, per-user and per-company rate limits."""
    await state.limits.check_ip(client_address(request))
    who = await state.identities.from_headers(
        request.headers.get("authorization"),
        request.headers.get("x-dev-tenant"),
        request.headers.get("x-dev-user"),
    )
    await state.limits.check_caller(who.tenant_id, who.user_id)
    return who


CallerDep = Annotated[Identity, Depends(caller)]


def having_role(*roles: str) -> Callable[[Identity], Awaitable[Identity]]:
    async def guard(who: CallerDep) -> Identity:
        who.require(*roles)
        return who

    return guard


AdminDep = Annotated[Identity, Depends(having_role("admin"))]
# Admins and managers: they edit content, courses and knowledge, read analytics and review.
EditorDep = Annotated[Identity, Depends(having_role(*EDITORS))]


async def tenant_session(state: StateDep, who: CallerDep) -> AsyncIterator[AsyncSession]:
    """The request's transaction, in the caller's company (row-level security)."""
    async with tenant_transaction(state.sessions, who.tenant_id) as session:
        yield session


# Committed when the route returns, before the answer is sent: a failed commit is the answer.
# A route that maps a commit's conflict (IntegrityError) to its own error, or needs several
# transactions, opens them itself with ``tenant_transaction``.
TenantSessionDep = Annotated[AsyncSession, Depends(tenant_session, scope="function")]

WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})


async def content_written(request: Request, state: StateDep, who: CallerDep) -> AsyncIterator[None]:
    """On a router whose writes change the training content: once a write has succeeded, its
    company's content cache is invalidated in every replica (``content_cache``).

    A router's dependencies are entered before the route's own, so this one is left after
    them: after the route's transaction has committed (a reader in between would cache the
    old rows under the new generation), and before the answer is sent (a client told 200
    has its edit in its next turn). A write that failed (an exception) changed nothing.
    """
    yield
    if request.method in WRITES:
        try:
            await state.content.invalidate(who.tenant_id)
        except Exception as exc:  # committed: the edit is seen once the entries expire
            log.error("content cache not invalidated for %s: %r", who.tenant_id, exc)


ContentWritten = Depends(content_written, scope="function")


@dataclass(frozen=True)
class AuditLog:
    """Records the caller's admin actions, with the request's id."""

    who: Identity
    request_id: str

    async def record(self, session: AsyncSession, action: str, target: str, **details: Any) -> None:
        """Record an admin action in the transaction that makes it (both or neither)."""
        await audit.record(
            session,
            tenant_id=self.who.tenant_id,
            actor_user_id=self.who.user_id,
            action=action,
            target=target,
            details=details,
            request_id=self.request_id,
        )


async def audit_log(request: Request, who: CallerDep) -> AuditLog:
    return AuditLog(who=who, request_id=request_id(request))


AuditDep = Annotated[AuditLog, Depends(audit_log)]
