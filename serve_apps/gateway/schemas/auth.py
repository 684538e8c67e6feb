"""Bodies of sign-in, tokens and who am I."""

from __future__ import annotations

import uuid

from pydantic import BaseModel, ConfigDict, Field

from serve_apps.contracts.specs import StorableText


class LoginRequest(StorableText):
    model_config = ConfigDict(extra="forbid")

    tenant: str = Field(..., min_length=1, max_length=64, description="Company slug.")
    email: str = Field(..., min_length=3, max_length=320, pattern=r"^[^@\s]+@[^@\s]+$")
    password: str = Field(..., min_length=1, max_length=1024)


class RefreshRequest(StorableText):
    model_config = ConfigDict(extra="forbid")

    refresh_token: str = Field(..., min_length=1, max_length=512)


class TokenPairOut(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_in: int = Field(description="Seconds the access token is valid.")
    refresh_token: str
    refresh_expires_in: int


class WebSocketTicketOut(BaseModel):
    ticket: str = Field(description="Put it in the WebSocket URL as ?ticket=...; one use.")
    expires_in: int


class MeOut(BaseModel):
    user_id: uuid.UUID
    tenant_id: uuid.UUID
    email: str
    display_name: str
    role: str


class AcceptInviteRequest(StorableText):
    model_config = ConfigDict(extra="forbid")

    invitation_token: str = Field(..., min_length=1, max_length=512)
    password: str = Field(..., min_length=12, max_length=1024)
