"""Admin actions land in an append-only audit log that only the company's admins can read."""

from __future__ import annotations

import uuid

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError

from db.engine import create_engine, session_factory, tenant_transaction


def test_knowledge_admin_actions_are_audited_with_actor_and_request_id(
    base_url, demo_admin, rival_admin
):
    name = f"audit-{uuid.uuid4().hex[:6]}.md"
    with httpx.Client(base_url=base_url, headers=demo_admin, timeout=120) as http:
        created = http.post(
            "/v1/knowledge-bases/tests-audit/documents",
            files={"file": (name, f"# Audit\n\n{uuid.uuid4()} notes.".encode())},
        )
        assert created.status_code == 201, created.text
        deleted = http.delete(f"/v1/knowledge-bases/tests-audit/documents/{created.json()['id']}")
        assert deleted.status_code == 204
        me = http.get("/v1/me").json()
        events = http.get("/v1/audit-events", params={"limit": 20}).json()
    mine = [e for e in events if e["target"] == f"tests-audit/{name}"]
    assert [e["action"] for e in mine] == ["knowledge.document.delete", "knowledge.document.upload"]
    assert all(e["actor_user_id"] == me["user_id"] and e["request_id"] for e in mine)
    assert mine[1]["request_id"] == created.headers["x-request-id"]
    with httpx.Client(base_url=base_url, headers=rival_admin, timeout=30) as rival:
        theirs = rival.get("/v1/audit-events").json()
    assert all(e["target"] != f"tests-audit/{name}" for e in theirs)


def test_only_admins_read_the_audit_log(base_url):
    manager = {"X-Dev-Tenant": "demo", "X-Dev-User": "manager@demo.salesboost.local"}
    with httpx.Client(base_url=base_url, headers=manager, timeout=30) as http:
        assert http.get("/v1/audit-events").status_code == 403
        assert http.get("/v1/audit-events", params={"limit": 0}).status_code in (403, 422)


async def test_the_app_role_cannot_rewrite_or_erase_the_audit_log(app_db_url, owner_db_url):
    engine = sa.create_engine(owner_db_url)
    with engine.connect() as conn:
        demo = conn.execute(sa.text("SELECT id FROM tenants WHERE slug = 'demo'")).scalar_one()
    engine.dispose()
    app_engine = create_engine(app_db_url, pool_size=1)
    sessions = session_factory(app_engine)
    try:
        for statement in ["UPDATE audit_events SET action = 'x'", "DELETE FROM audit_events"]:
            with pytest.raises(DBAPIError, match="permission denied"):
                async with tenant_transaction(sessions, demo) as session:
                    await session.execute(sa.text(statement))
    finally:
        await app_engine.dispose()
