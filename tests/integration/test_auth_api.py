"""Sign-in, refresh rotation, sign-out, WebSocket tickets and the Origin check, on the stack."""

from __future__ import annotations

import json

import httpx
import pytest
import sqlalchemy as sa
from websockets.exceptions import InvalidStatus

from tests.integration.wsclient import connect, new_session, recv

PASSWORD = "a long and unguessable test passphrase"
MANAGER = "manager@demo.salesboost.local"


@pytest.fixture(scope="module")
def manager_password(owner_db_url) -> str:
    """Give the seeded demo manager a password, as the schema owner would (tests only)."""
    from serve_apps.gateway.auth import hash_password

    engine = sa.create_engine(owner_db_url)
    with engine.begin() as conn:
        tenant = conn.execute(sa.text("SELECT id FROM tenants WHERE slug = 'demo'")).scalar_one()
        conn.execute(sa.text("SELECT set_config('app.tenant_id', :t, true)"), {"t": str(tenant)})
        conn.execute(
            sa.text("UPDATE users SET password_hash = :h WHERE email = :e"),
            {"h": hash_password(PASSWORD), "e": MANAGER},
        )
    engine.dispose()
    return PASSWORD


def login(http: httpx.Client, password: str, email: str = MANAGER, tenant: str = "demo"):
    return http.post(
        "/v1/auth/login", json={"tenant": tenant, "email": email, "password": password}
    )


def test_sign_in_gives_tokens_that_say_who_i_am(base_url, manager_password):
    with httpx.Client(base_url=base_url, timeout=30) as http:
        response = login(http, manager_password)
        assert response.status_code == 200, response.text
        pair = response.json()
        assert pair["token_type"] == "bearer" and pair["expires_in"] == 900
        me = http.get("/v1/me", headers={"Authorization": f"Bearer {pair['access_token']}"})
    assert me.status_code == 200 and me.json()["email"] == MANAGER
    assert me.json()["role"] == "manager"


@pytest.mark.parametrize(
    ("tenant", "email", "password"),
    [
        ("demo", MANAGER, "wrong password"),
        ("demo", "nobody@demo.salesboost.local", PASSWORD),
        ("no-such-company", MANAGER, PASSWORD),
        ("demo", "trainee@demo.salesboost.local", PASSWORD),  # has no password yet
    ],
)
def test_wrong_credentials_all_get_the_same_401(
    base_url, manager_password, tenant, email, password
):
    with httpx.Client(base_url=base_url, timeout=30) as http:
        response = login(http, password, email=email, tenant=tenant)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "bad_credentials"


def test_refresh_rotates_and_a_reused_token_ends_every_session(base_url, manager_password):
    with httpx.Client(base_url=base_url, timeout=30) as http:
        first = login(http, manager_password).json()
        second = http.post("/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
        assert second.status_code == 200
        second = second.json()
        assert second["refresh_token"] != first["refresh_token"]
        replayed = http.post("/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
        assert replayed.status_code == 401
        # The reuse revoked the whole family: the newest refresh token is dead too.
        newest = http.post("/v1/auth/refresh", json={"refresh_token": second["refresh_token"]})
        assert newest.status_code == 401


def test_logout_revokes_the_refresh_token(base_url, manager_password):
    with httpx.Client(base_url=base_url, timeout=30) as http:
        pair = login(http, manager_password).json()
        body = {"refresh_token": pair["refresh_token"]}
        assert http.post("/v1/auth/logout", json=body).status_code == 204
        assert http.post("/v1/auth/refresh", json=body).status_code == 401
        for junk in ["", "rt.garbage", "x" * 600]:
            response = http.post("/v1/auth/refresh", json={"refresh_token": junk})
            assert response.status_code in (401, 422)
            assert response.json()["error"]["code"]


@pytest.mark.parametrize(
    "authorization",
    [
        "Bearer not-a-jwt",
        "Bearer eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiJ4In0.",
        "Basic dXNlcjpwYXNz",
        "Bearer",
    ],
)
def test_bad_bearer_tokens_get_401_even_in_development(base_url, authorization):
    with httpx.Client(base_url=base_url, timeout=30) as http:
        response = http.get("/v1/scenarios", headers={"Authorization": authorization})
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthenticated"


async def test_websocket_opens_with_a_single_use_ticket(base_url, manager_password):
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
        pair = (
            await http.post(
                "/v1/auth/login",
                json={"tenant": "demo", "email": MANAGER, "password": manager_password},
            )
        ).json()
        bearer = {"Authorization": f"Bearer {pair['access_token']}"}
        session_id = await new_session(base_url, headers=bearer)
        ticket = (await http.post("/v1/auth/ws-ticket", headers=bearer)).json()["ticket"]
    async with connect(base_url, session_id, f"?ticket={ticket}") as ws:
        await ws.send(json.dumps({"type": "ping"}))
        assert (await recv(ws))["type"] == "pong"
    with pytest.raises(InvalidStatus) as refused:  # the same ticket again
        async with connect(base_url, session_id, f"?ticket={ticket}"):
            pass
    assert refused.value.response.status_code == 403


async def test_websocket_from_a_foreign_origin_is_refused(base_url):
    session_id = await new_session(base_url)
    with pytest.raises(InvalidStatus) as refused:
        async with connect(base_url, session_id, origin="https://evil.example"):
            pass
    assert refused.value.response.status_code == 403
    async with connect(base_url, session_id, origin="http://localhost:8000") as ws:
        await ws.send(json.dumps({"type": "ping"}))
        assert (await recv(ws))["type"] == "pong"


def test_password_guessing_against_one_account_is_rate_limited(base_url):
    body = {"tenant": "demo", "email": "guess-target@demo.salesboost.local", "password": "x"}
    with httpx.Client(base_url=base_url, timeout=30) as http:
        codes = [http.post("/v1/auth/login", json=body).status_code for _ in range(10)]
        limited = http.post("/v1/auth/login", json=body)
    assert codes == [401] * 10
    assert limited.status_code == 429
    assert limited.json()["error"]["code"] == "rate_limited"
    # The sliding window lets the next guess in once the last minute holds fewer than ten:
    # eleven in this window wait at most its rest plus 2/11 of the next (72 s); guesses
    # split across two windows wait less (rate_limits.seconds_until_allowed).
    assert 1 <= int(limited.headers["Retry-After"]) <= 72


def test_cors_allows_configured_origins_only(base_url):
    with httpx.Client(base_url=base_url, timeout=30) as http:
        allowed = http.options(
            "/v1/scenarios",
            headers={"Origin": "http://localhost:8000", "Access-Control-Request-Method": "GET"},
        )
        denied = http.options(
            "/v1/scenarios",
            headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"},
        )
    assert allowed.headers.get("access-control-allow-origin") == "http://localhost:8000"
    assert "access-control-allow-origin" not in denied.headers
