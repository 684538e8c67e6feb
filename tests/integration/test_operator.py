"""The platform operator's commands against the stack's database: a new company with its
first admin, and audited support access into a company."""

from __future__ import annotations

import uuid

import httpx
import pytest

from cluster.local_stack import signing_secret
from serve_apps.cli.operator import as_owner, create_tenant, support_access
from serve_apps.gateway.auth import AccessTokens

pytestmark = pytest.mark.integration
PASSWORD = "a long and unguessable test passphrase"


def test_a_new_company_gets_an_admin_who_signs_in_with_the_invitation(base_url, owner_db_url):
    slug = f"acme-{uuid.uuid4().hex[:6]}"
    _, token = as_owner(
        owner_db_url,
        lambda session: create_tenant(
            session, slug=slug, name="Acme", admin_email="Boss@Acme.example", admin_name="Boss"
        ),
    )
    with pytest.raises(ValueError):
        as_owner(
            owner_db_url,
            lambda session: create_tenant(
                session, slug=slug, name="Again", admin_email="x@y.z", admin_name="X"
            ),
        )
    with httpx.Client(base_url=base_url, timeout=30) as http:
        accepted = http.post(
            "/v1/auth/accept-invite", json={"invitation_token": token, "password": PASSWORD}
        )
        assert accepted.status_code == 200, accepted.text
        bearer = {"Authorization": f"Bearer {accepted.json()['access_token']}"}
        me = http.get("/v1/me", headers=bearer).json()
        assert (me["email"], me["role"]) == ("boss@acme.example", "admin")
        assert http.get("/v1/scenarios", headers=bearer).json() == []  # a company of its own
        log = http.get("/v1/audit-events", headers=bearer).json()
        assert [e["action"] for e in log] == ["operator.create_tenant"]


def test_support_access_is_short_lived_and_written_to_the_companys_audit_log(
    base_url, owner_db_url, stack, demo_admin
):
    tokens = AccessTokens(
        secret=signing_secret(stack.settings),
        issuer=stack.settings.jwt_issuer,
        audience=stack.settings.jwt_audience,
        ttl_s=5 * 60,
    )
    with pytest.raises(ValueError):
        as_owner(
            owner_db_url,
            lambda session: support_access(session, slug="demo", reason="because", tokens=tokens),
        )
    token = as_owner(
        owner_db_url,
        lambda session: support_access(
            session, slug="demo", reason="ticket 4711: scores look wrong", tokens=tokens
        ),
    )
    with httpx.Client(base_url=base_url, timeout=30) as http:
        bearer = {"Authorization": f"Bearer {token}"}
        assert http.get("/v1/users", headers=bearer).status_code == 200
        log = http.get("/v1/audit-events", headers=demo_admin).json()
    entry = next(e for e in log if e["action"] == "operator.support_access")
    assert entry["details"] == {"reason": "ticket 4711: scores look wrong", "minutes": 5}
    signin = {"tenant": "demo", "email": "platform-support@salesboost.invalid", "password": "x"}
    with httpx.Client(base_url=base_url, timeout=30) as http:
        assert http.post("/v1/auth/login", json=signin).status_code == 401  # no password
