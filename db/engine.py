"""Async engine and pool, and the one way to open a tenant-scoped transaction."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import TextClause, text
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

TENANT_SETTING = "app.tenant_id"


def create_engine(url: str, *, pool_size: int = 5, pool_recycle_s: int = 1800) -> AsyncEngine:
    return create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,  # a server restart must not surface as an error on the next turn
        pool_recycle=pool_recycle_s,
    )


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


def act_as_tenant(tenant_id: uuid.UUID) -> tuple[TextClause, dict[str, str]]:
    """The statement and parameters that make row-level security see ``tenant_id`` until
    the transaction ends, for an async or a sync session alike: ``session.execute(*...)``."""
    return _SET_TENANT, {"key": TENANT_SETTING, "value": str(tenant_id)}


_SET_TENANT = text("SELECT set_config(:key, :value, true)")


@asynccontextmanager
async def tenant_transaction(
    sessions: async_sessionmaker[AsyncSession], tenant_id: uuid.UUID
) -> AsyncIterator[AsyncSession]:
    """A transaction in which row-level security sees exactly one tenant.

    The setting is transaction-local (``set_config(..., true)``), so a pooled connection
    never carries one tenant into another's transaction.
    """
    async with sessions() as session, session.begin():
        await session.execute(*act_as_tenant(tenant_id))
        yield session
