"""Row-level security on the embedded PostgreSQL, checked from the database itself.

The app connects as a role that owns nothing and cannot bypass RLS; every table with a
``tenant_id`` has RLS enabled and forced; with no tenant set nothing is visible or writable;
and a small pool shared by interleaved tenants, with failures mid-transaction, never lets a
tenant setting leak into another transaction.
"""

from __future__ import annotations

import asyncio
import random
import uuid

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError

from db.embedded import APP_ROLE
from db.engine import create_engine, session_factory, tenant_transaction


def owner_rows(owner_db_url: str, query: str) -> list[tuple]:
    engine = sa.create_engine(owner_db_url)
    try:
        with engine.connect() as conn:
            return [tuple(row) for row in conn.execute(sa.text(query))]
    finally:
        engine.dispose()


def tenant_tables(owner_db_url: str) -> list[str]:
    rows = owner_rows(
        owner_db_url,
        "SELECT table_name FROM information_schema.columns "
        "WHERE table_schema = 'public' AND column_name = 'tenant_id' ORDER BY table_name",
    )
    return [name for (name,) in rows]


def test_every_tenant_owned_table_has_rls_enabled_forced_and_a_policy(owner_db_url):
    tables = tenant_tables(owner_db_url)
    assert {"users", "turns", "knowledge_documents", "refresh_tokens"} <= set(tables)
    rows = owner_rows(
        owner_db_url,
        "SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity, "
        "(SELECT count(*) FROM pg_policy p WHERE p.polrelid = c.oid) "
        "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = 'public' AND c.relkind = 'r'",
    )
    security = {name: (enabled, forced, policies) for name, enabled, forced, policies in rows}
    for table in tables:
        assert security[table] == (True, True, 1), table


def test_the_app_role_owns_nothing_and_cannot_bypass_rls(owner_db_url, app_db_url):
    assert APP_ROLE in app_db_url
    ((superuser, bypass, createrole, createdb),) = owner_rows(
        owner_db_url,
        f"SELECT rolsuper, rolbypassrls, rolcreaterole, rolcreatedb "
        f"FROM pg_roles WHERE rolname = '{APP_ROLE}'",
    )
    assert (superuser, bypass, createrole, createdb) == (False, False, False, False)
    owned = owner_rows(
        owner_db_url,
        f"SELECT tablename FROM pg_tables WHERE tableowner = '{APP_ROLE}' "
        f"UNION SELECT sequencename FROM pg_sequences WHERE sequenceowner = '{APP_ROLE}'",
    )
    assert owned == []


async def test_with_no_tenant_set_reads_return_nothing_and_writes_fail(app_db_url, owner_db_url):
    ((demo_id,),) = owner_rows(owner_db_url, "SELECT id FROM tenants WHERE slug = 'demo'")
    engine = create_engine(app_db_url, pool_size=1)
    try:
        async with engine.connect() as conn:
            for table in tenant_tables(owner_db_url):
                count = await conn.scalar(sa.text(f"SELECT count(*) FROM {table}"))
                assert count == 0, table
            with pytest.raises(DBAPIError, match="row-level security"):
                await conn.execute(
                    sa.text(
                        "INSERT INTO personas (id, tenant_id, slug, name, role, company, "
                        "personality, goals, objections, facts, hidden) VALUES "
                        "(:id, :t, 'x', 'x', 'x', 'x', 'x', '[]', '[]', '[]', '[]')"
                    ),
                    {"id": uuid.uuid4(), "t": demo_id},
                )
    finally:
        await engine.dispose()


async def test_interleaved_tenants_on_a_small_pool_with_failures_never_leak(
    app_db_url, owner_db_url, second_tenant
):
    tenants = dict(owner_rows(owner_db_url, "SELECT slug, id FROM tenants"))
    demo, rival = tenants["demo"], tenants["rival"]
    engine = create_engine(app_db_url, pool_size=2)
    sessions = session_factory(engine)
    rng = random.Random(7)
    seen: list[tuple[uuid.UUID, set[uuid.UUID], str]] = []

    class InjectedFailure(RuntimeError):
        pass

    async def one(index: int) -> None:
        tenant = demo if index % 2 else rival
        try:
            async with tenant_transaction(sessions, tenant) as session:
                visible = set(
                    (await session.execute(sa.text("SELECT DISTINCT tenant_id FROM users")))
                    .scalars()
                    .all()
                )
                setting = await session.scalar(
                    sa.text("SELECT current_setting('app.tenant_id', true)")
                )
                seen.append((tenant, visible, setting))
                await asyncio.sleep(rng.random() / 200)
                if rng.random() < 0.3:
                    raise InjectedFailure
                if rng.random() < 0.2:
                    await session.execute(sa.text("SELECT 1/0"))  # a database error mid-way
        except (InjectedFailure, DBAPIError):
            pass

    try:
        await asyncio.gather(*(one(i) for i in range(300)))
        assert len(seen) == 300
        for tenant, visible, setting in seen:
            assert visible == {tenant} and setting == str(tenant)
        for _ in range(4):  # every pooled connection, outside any tenant transaction
            async with engine.connect() as conn:
                setting = await conn.scalar(
                    sa.text("SELECT current_setting('app.tenant_id', true)")
                )
                assert not setting
                assert await conn.scalar(sa.text("SELECT count(*) FROM users")) == 0
    finally:
        await engine.dispose()
