"""Row-level security helpers used by migrations: the policies live in migrations, built here.

A row is visible and writable only when its ``tenant_id`` equals the transaction's
``app.tenant_id`` setting. With no tenant set, ``current_setting(..., true)`` is NULL, so
reads return nothing and writes fail the policy check.
"""

from __future__ import annotations

from collections.abc import Iterable

from alembic import op

from db.embedded import APP_ROLE
from db.engine import TENANT_SETTING

POLICY = "tenant_isolation"
TENANT_PREDICATE = f"tenant_id = NULLIF(current_setting('{TENANT_SETTING}', true), '')::uuid"


def _app_role_exists() -> bool:
    bind = op.get_bind()
    return (
        bind.exec_driver_sql(f"SELECT 1 FROM pg_roles WHERE rolname = '{APP_ROLE}'").first()
        is not None
    )


def enable_tenant_isolation(tables: Iterable[str]) -> None:
    grant = _app_role_exists()
    for table in tables:
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
        op.execute(
            f"CREATE POLICY {POLICY} ON {table} "
            f"USING ({TENANT_PREDICATE}) WITH CHECK ({TENANT_PREDICATE})"
        )
        if grant:
            op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON {table} TO {APP_ROLE}")
    if grant:
        op.execute(f"GRANT USAGE ON SCHEMA public TO {APP_ROLE}")
        op.execute(f"GRANT SELECT ON tenants TO {APP_ROLE}")
        op.execute(f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {APP_ROLE}")


def disable_tenant_isolation(tables: Iterable[str]) -> None:
    for table in tables:
        op.execute(f"DROP POLICY IF EXISTS {POLICY} ON {table}")
        op.execute(f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY")
