"""Async engine and pool, and the one way to open a tenant-scoped transaction."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager

from sqlalchemy import TextClause, event, text
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from serve_apps.telemetry.metrics import product_metrics

TENANT_SETTING = "app.tenant_id"


def create_engine(url: str, *, pool_size: int = 5, pool_recycle_s: int = 1800) -> AsyncEngine:
    engine = create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,  # a server restart must not surface as an error on the next turn
        pool_recycle=pool_recycle_s,
    )
    _watch_pool(engine)
    return engine


def _watch_pool(engine: AsyncEngine) -> None:
    """The connections checked out of the pool, in the metrics, at every checkout and return."""
    pool = engine.sync_engine.pool
    in_use = product_metrics().db_pool_in_use

    def update(*_: object) -> None:
        in_use.set(pool.checkedout())  # type: ignore[attr-defined]

    event.listen(pool, "checkout", update)
    event.listen(pool, "checkin", update)


_waiting = 0


@contextmanager
def _waiting_for_connection() -> Iterator[None]:
    """Counts the transactions of this process that wait for their connection (and its first
    statement, a sub-millisecond one): above zero for long, the pool is too small."""
    global _waiting
    gauge = product_metrics().db_pool_waiting
    _waiting += 1
    gauge.set(_waiting)
    try:
        yield
    finally:
        _waiting -= 1
        gauge.set(_waiting)


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
        with _waiting_for_connection():
            await session.execute(*act_as_tenant(tenant_id))
        yield session
