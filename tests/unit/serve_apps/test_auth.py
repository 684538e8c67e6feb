"""Access tokens are refused unless everything about them is right; passwords hash with argon2."""

import base64
import json
import time
import uuid

import jwt
import pytest

from serve_apps.gateway.auth import (
    AccessClaims,
    AccessTokens,
    InvalidTokenError,
    hash_password,
    new_refresh_token,
    refresh_token_tenant,
    verify_password,
)

SECRET = "s" * 48
TOKENS = AccessTokens(secret=SECRET, issuer="salesboost", audience="salesboost-api", ttl_s=900)
CLAIMS = AccessClaims(user_id=uuid.uuid4(), tenant_id=uuid.uuid4(), role="manager")


def payload(**changes):
    now = int(time.time())
    body = {
        "iss": "salesboost",
        "aud": "salesboost-api",
        "sub": str(CLAIMS.user_id),
        "tid": str(CLAIMS.tenant_id),
        "role": "manager",
        "iat": now,
        "exp": now + 600,
    }
    body.update(changes)
    return {k: v for k, v in body.items() if v is not None}


def b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def test_a_token_we_issued_verifies_to_its_claims():
    assert TOKENS.verify(TOKENS.issue(CLAIMS)) == CLAIMS


@pytest.mark.parametrize(
    "token",
    [
        pytest.param(jwt.encode(payload(), "w" * 48, algorithm="HS256"), id="wrong-key"),
        pytest.param(jwt.encode(payload(), SECRET, algorithm="HS384"), id="other-algorithm"),
        pytest.param(f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(payload())}.", id="alg-none"),
        pytest.param(
            jwt.encode(payload(exp=int(time.time()) - 60), SECRET, algorithm="HS256"),
            id="expired",
        ),
        pytest.param(jwt.encode(payload(exp=None), SECRET, algorithm="HS256"), id="no-exp"),
        pytest.param(jwt.encode(payload(aud="other"), SECRET, algorithm="HS256"), id="wrong-aud"),
        pytest.param(jwt.encode(payload(aud=None), SECRET, algorithm="HS256"), id="no-aud"),
        pytest.param(jwt.encode(payload(iss="evil"), SECRET, algorithm="HS256"), id="wrong-iss"),
        pytest.param(jwt.encode(payload(iss=None), SECRET, algorithm="HS256"), id="no-iss"),
        pytest.param(jwt.encode(payload(tid=None), SECRET, algorithm="HS256"), id="no-tenant"),
        pytest.param(jwt.encode(payload(sub="nope"), SECRET, algorithm="HS256"), id="bad-sub"),
        pytest.param(jwt.encode(payload(role="root"), SECRET, algorithm="HS256"), id="bad-role"),
        pytest.param("not.a.token", id="garbage"),
        pytest.param("", id="empty"),
    ],
)
def test_forged_expired_and_malformed_tokens_are_refused(token):
    with pytest.raises(InvalidTokenError):
        TOKENS.verify(token)


def test_a_tampered_payload_breaks_the_signature():
    header, _, signature = TOKENS.issue(CLAIMS).split(".")
    forged = f"{header}.{b64(payload(role='admin'))}.{signature}"
    with pytest.raises(InvalidTokenError):
        TOKENS.verify(forged)


def test_short_secrets_are_refused():
    with pytest.raises(ValueError, match="32"):
        AccessTokens(secret="short", issuer="i", audience="a", ttl_s=60)


def test_passwords_hash_with_argon2id_and_verify():
    hashed = hash_password("correct horse battery staple")
    assert hashed.startswith("$argon2id$")
    assert verify_password(hashed, "correct horse battery staple")
    assert not verify_password(hashed, "wrong")
    assert not verify_password(None, "anything")  # no password set: never matches


def test_refresh_tokens_name_their_tenant_and_bad_ones_are_refused():
    tenant = uuid.uuid4()
    assert refresh_token_tenant(new_refresh_token(tenant)) == tenant
    for bad in ["", "rt.x.y", f"xx.{tenant.hex}.{'a' * 43}", f"rt.nothex.{'a' * 43}"]:
        with pytest.raises(InvalidTokenError):
            refresh_token_tenant(bad)
