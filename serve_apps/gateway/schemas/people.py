"""Bodies of the people routes: users, invitations, the CSV import, teams."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from serve_apps.contracts.specs import StorableText
from serve_apps.gateway.schemas.common import TeamName

Email = Annotated[str, Field(min_length=3, max_length=320, pattern=r"^[^@\s,]+@[^@\s,]+$")]
RoleName = Literal["admin", "manager", "trainee"]


class UserOut(BaseModel):
    id: uuid.UUID
    email: str
    display_name: str
    role: str
    active: bool
    invited: bool = Field(description="True until the user has set a password.")
    teams: list[str] = Field(default_factory=list)


class InviteRequest(StorableText):
    model_config = ConfigDict(extra="forbid")

    email: Email
    display_name: str = Field(..., min_length=1, max_length=200)
    role: RoleName = "trainee"
    teams: list[TeamName] = Field(default_factory=list, max_length=20)


class InvitationOut(BaseModel):
    user: UserOut
    invitation_token: str = Field(
        description="Give it to the person; POST /v1/auth/accept-invite sets their password."
    )
    expires_at: datetime


class ImportRowOut(BaseModel):
    row: int = Field(description="The CSV line number (1 is the header).")
    email: str | None
    status: Literal["created", "exists", "invalid"]
    error: str | None = None
    invitation_token: str | None = None


class ImportReportOut(BaseModel):
    created: int
    exists: int
    invalid: int
    rows: list[ImportRowOut]


class UserPatch(StorableText):
    model_config = ConfigDict(extra="forbid")

    display_name: str | None = Field(None, min_length=1, max_length=200)
    role: RoleName | None = None
    active: bool | None = None


class TeamIn(StorableText):
    model_config = ConfigDict(extra="forbid")

    name: TeamName


class TeamOut(BaseModel):
    id: uuid.UUID
    name: str
    members: list[uuid.UUID]


class TeamMembersIn(StorableText):
    model_config = ConfigDict(extra="forbid")

    user_ids: list[uuid.UUID] = Field(..., max_length=1000)
