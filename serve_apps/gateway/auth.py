"""Passwords, access tokens, refresh tokens and WebSocket tickets.

* Passwords: argon2id (``argon2-cffi``), rehashed on sign-in when the parameters change.
* Access tokens: JWT, HS256 only (the algorithm is pinned on both sides, so ``alg: none``
  and algorithm confusion are refused), short-lived, with ``exp``, ``iat``, ``iss``, ``aud``,
  ``sub`` (user), ``tid`` (tenant) and ``role`` all required.
* Refresh tokens: opaque random strings that name their tenant (so the row can be found
  under row-level security); only their SHA-256 is stored; one use each (rotation).
  Invitation tokens are made the same way, and set a password once within their lifetime.
* WebSocket tickets: a browser cannot put a header on a WebSocket, and an access token in
  a URL ends up in logs, so the client trades its token for a single-use ticket that lives
  for seconds, and puts that in the URL.
"""

from __future__ import annotations

import hashlib
import secrets
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

ALGORITHM = "HS256"
REQUIRED_CLAIMS = ["exp", "iat", "iss", "aud", "sub", "tid", "role"]
ROLES = frozenset({"admin", "manager", "trainee"})

_hasher = PasswordHasher()
# Verified against when the user does not exist, so a wrong email costs the same time.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


class InvalidTokenError(ValueError):
    """The token is missing, malformed, forged, expired, or not for us."""


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """True when ``password`` matches; runs the same work when there is no hash."""
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and bool(password_hash)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    return _hasher.check_needs_rehash(password_hash)


@dataclass(frozen=True)
class AccessClaims:
    user_id: uuid.UUID
    tenant_id: uuid.UUID
    role: str


class AccessTokens:
    def __init__(self, *, secret: str, issuer: str, audience: str, ttl_s: int) -> None:
        if len(secret) < 32:
            raise ValueError("the token signing secret must be at least 32 characters")
        self._secret = secret
        self.issuer = issuer
        self.audience = audience
        self.ttl_s = ttl_s

    def issue(self, claims: AccessClaims, *, now: float | None = None) -> str:
        issued = int(now if now is not None else time.time())
        payload = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": str(claims.user_id),
            "tid": str(claims.tenant_id),
            "role": claims.role,
            "iat": issued,
            "exp": issued + self.ttl_s,
            "jti": secrets.token_hex(8),
        }
        return jwt.encode(payload, self._secret, algorithm=ALGORITHM)

    def verify(self, token: str) -> AccessClaims:
        try:
            payload = jwt.decode(
                token,
                self._secret,
                algorithms=[ALGORITHM],
                audience=self.audience,
                issuer=self.issuer,
                options={"require": REQUIRED_CLAIMS},
                leeway=5,
            )
            claims = AccessClaims(
                user_id=uuid.UUID(payload["sub"]),
                tenant_id=uuid.UUID(payload["tid"]),
                role=str(payload["role"]),
            )
        except (jwt.PyJWTError, ValueError, TypeError, KeyError) as exc:
            raise InvalidTokenError(f"invalid access token ({type(exc).__name__})") from None
        if claims.role not in ROLES:
            raise InvalidTokenError("invalid access token (unknown role)")
        return claims


# --- refresh tokens -----------------------------------------------------------------------

REFRESH_PREFIX = "rt"
INVITE_PREFIX = "inv"
# How long an invitation to set a password stays valid (used once).
INVITATION_TTL = timedelta(days=7)


def new_tenant_token(prefix: str, tenant_id: uuid.UUID) -> str:
    """A random token that names its company, so it can be looked up under that company's
    row-level security (stored only as its SHA-256)."""
    return f"{prefix}.{tenant_id.hex}.{secrets.token_urlsafe(32)}"


def tenant_of_token(prefix: str, token: str) -> uuid.UUID:
    """The tenant a token names (not proof of anything until its hash is found)."""
    parts = token.split(".")
    if len(parts) != 3 or parts[0] != prefix or len(parts[2]) < 40:
        raise InvalidTokenError("malformed token")
    try:
        return uuid.UUID(hex=parts[1])
    except ValueError:
        raise InvalidTokenError("malformed token") from None


def new_refresh_token(tenant_id: uuid.UUID) -> str:
    return new_tenant_token(REFRESH_PREFIX, tenant_id)


def refresh_token_tenant(token: str) -> uuid.UUID:
    return tenant_of_token(REFRESH_PREFIX, token)


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_ws_ticket() -> str:
    return secrets.token_urlsafe(24)
