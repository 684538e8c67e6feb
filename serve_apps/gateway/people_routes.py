"""People: invitations, CSV import, roles, deactivation and teams (admins), and accepting an
invitation (the invited person).

A mixin of the gateway deployment. An invitation token names its company and is stored as
its SHA-256; the person sets a password with it once, within its lifetime. An admin cannot
demote or deactivate themselves (a company must not lock itself out).
"""

from __future__ import annotations

import asyncio
import csv
import io
import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import File, Request, UploadFile
from pydantic import TypeAdapter, ValidationError
from sqlalchemy.exc import IntegrityError

from db import auth_repository as auth_repo
from db import people_repository as people
from db.engine import tenant_transaction
from db.models import Team, TeamMember, User, UserRole
from serve_apps.gateway.api import api
from serve_apps.gateway.auth import (
    INVITE_PREFIX,
    InvalidTokenError,
    hash_password,
    new_tenant_token,
    tenant_of_token,
    token_digest,
)
from serve_apps.gateway.errors import APIError
from serve_apps.gateway.identity import Identity
from serve_apps.gateway.schemas import (
    AcceptInviteRequest,
    ImportReportOut,
    ImportRowOut,
    InvitationOut,
    InviteRequest,
    TeamIn,
    TeamMembersIn,
    TeamOut,
    TokenPairOut,
    UserOut,
    UserPatch,
)

INVITATION_TTL = timedelta(days=7)
MAX_IMPORT_BYTES = 1 << 20
MAX_IMPORT_ROWS = 1000
IMPORT_COLUMNS = ("email", "display_name", "role", "team")
_invite = TypeAdapter(InviteRequest)


def _user_out(user: User, teams: dict[uuid.UUID, list[str]]) -> UserOut:
    return UserOut(
        id=user.id,
        email=user.email,
        display_name=user.display_name,
        role=user.role.value,
        active=user.active,
        invited=user.password_hash is None,
        teams=sorted(teams.get(user.id, [])),
    )


class PeopleRoutes:
    # Provided by the gateway deployment this is mixed into.
    sessions: Any
    settings: Any
    _identity_from: Any
    _audit: Any
    _token_pair: Any
    limits: Any

    async def _admin(self, request: Request) -> Identity:
        who = await self._identity_from(request)
        who.require("admin")
        return who

    async def _invite(
        self, session: Any, who: Identity, spec: InviteRequest
    ) -> tuple[User, str, datetime]:
        """Create the user and their invitation in the caller's transaction."""
        teams = await people.teams_by_name(session, spec.teams)
        missing = sorted(set(spec.teams) - set(teams))
        if missing:
            raise APIError(422, "unknown_team", f"no such teams: {missing}")
        user = User(
            tenant_id=who.tenant_id,
            email=spec.email.lower(),
            display_name=spec.display_name,
            role=UserRole(spec.role),
        )
        session.add(user)
        await session.flush()
        session.add_all(
            TeamMember(tenant_id=who.tenant_id, team_id=team.id, user_id=user.id)
            for team in teams.values()
        )
        token = new_tenant_token(INVITE_PREFIX, who.tenant_id)
        expires_at = datetime.now(UTC) + INVITATION_TTL
        await people.add_invitation(
            session,
            tenant_id=who.tenant_id,
            user_id=user.id,
            token_sha256=token_digest(token),
            expires_at=expires_at,
        )
        return user, token, expires_at

    # --- users ---------------------------------------------------------------------------------

    @api.get("/v1/users", response_model=list[UserOut], tags=["people"])
    async def list_users(self, request: Request) -> list[UserOut]:
        """Everyone in the company (admins); the members of their teams (managers)."""
        who = await self._identity_from(request)
        who.require("admin", "manager")
        async with tenant_transaction(self.sessions, who.tenant_id) as session:
            visible = await people.visible_user_ids(session, user_id=who.user_id, role=who.role)
            users = await people.list_users(session, ids=visible)
            teams = await people.teams_of_users(session)
        return [_user_out(u, teams) for u in users]

    @api.post("/v1/users/invite", response_model=InvitationOut, status_code=201, tags=["people"])
    async def invite_user(self, body: InviteRequest, request: Request) -> InvitationOut:
        """Create a user without a password, and the one-use token that lets them set it."""
        who = await self._admin(request)
        try:
            async with tenant_transaction(self.sessions, who.tenant_id) as session:
                user, token, expires_at = await self._invite(session, who, body)
                await self._audit(session, who, request, "user.invite", user.email, role=body.role)
                teams = await people.teams_of_users(session)
        except IntegrityError:
            raise APIError(409, "user_exists", f"a user {body.email!r} exists already") from None
        return InvitationOut(
            user=_user_out(user, teams), invitation_token=token, expires_at=expires_at
        )

    @api.post("/v1/users/import", response_model=ImportReportOut, tags=["people"])
    async def import_users(
        self,
        request: Request,
        file: Annotated[UploadFile, File(description="CSV: email,display_name,role,team")],
    ) -> ImportReportOut:
        """Invite many people from a CSV (``email,display_name,role,team``), one row at a
        time: each row is created, already there, or refused with the reason."""
        who = await self._admin(request)
        data = await file.read(MAX_IMPORT_BYTES + 1)
        if len(data) > MAX_IMPORT_BYTES:
            raise APIError(
                413, "upload_too_large", f"imports are limited to {MAX_IMPORT_BYTES} bytes"
            )
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise APIError(422, "invalid_csv", "the file is not UTF-8 text") from None
        reader = csv.DictReader(io.StringIO(text))
        if reader.fieldnames is None or set(IMPORT_COLUMNS[:2]) - set(reader.fieldnames):
            raise APIError(
                422, "invalid_csv", f"the header must name the columns {', '.join(IMPORT_COLUMNS)}"
            )
        rows: list[ImportRowOut] = []
        try:
            for line, raw in enumerate(reader, start=2):
                if line - 1 > MAX_IMPORT_ROWS:
                    raise APIError(422, "invalid_csv", f"at most {MAX_IMPORT_ROWS} rows at a time")
                rows.append(await self._import_row(request, who, line, raw))
        except csv.Error as exc:
            raise APIError(422, "invalid_csv", f"line {reader.line_num}: {exc}") from None
        count = {s: sum(r.status == s for r in rows) for s in ("created", "exists", "invalid")}
        return ImportReportOut(**count, rows=rows)

    async def _import_row(
        self, request: Request, who: Identity, line: int, raw: dict[str, Any]
    ) -> ImportRowOut:
        email = (raw.get("email") or "").strip() or None
        team = (raw.get("team") or "").strip()
        try:
            spec = _invite.validate_python(
                {
                    "email": email or "",
                    "display_name": (raw.get("display_name") or "").strip(),
                    "role": (raw.get("role") or "trainee").strip().lower(),
                    "teams": [team] if team else [],
                }
            )
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            return ImportRowOut(
                row=line, email=email, status="invalid", error=f"{where}: {first['msg']}"
            )
        try:
            async with tenant_transaction(self.sessions, who.tenant_id) as session:
                _, token, _ = await self._invite(session, who, spec)
                await self._audit(session, who, request, "user.invite", spec.email, via="import")
        except IntegrityError:
            return ImportRowOut(row=line, email=email, status="exists")
        except APIError as exc:
            return ImportRowOut(row=line, email=email, status="invalid", error=exc.message)
        return ImportRowOut(row=line, email=email, status="created", invitation_token=token)

    @api.patch("/v1/users/{user_id}", response_model=UserOut, tags=["people"])
    async def update_user(self, user_id: uuid.UUID, body: UserPatch, request: Request) -> UserOut:
        """Change a user's name or role, or deactivate them (their refresh tokens stop)."""
        who = await self._admin(request)
        if user_id == who.user_id and (body.role not in (None, "admin") or body.active is False):
            raise APIError(409, "self_lockout", "admins cannot demote or deactivate themselves")
        async with tenant_transaction(self.sessions, who.tenant_id) as session:
            user = await session.get(User, user_id)
            if user is None:
                raise APIError(404, "user_not_found", "no such user")
            changes = body.model_dump(exclude_none=True)
            if "role" in changes:
                user.role = UserRole(changes["role"])
            if "display_name" in changes:
                user.display_name = changes["display_name"]
            if "active" in changes:
                user.active = changes["active"]
                if not user.active:
                    await auth_repo.revoke_all_for_user(
                        session, user_id=user.id, now=datetime.now(UTC)
                    )
            await self._audit(session, who, request, "user.update", user.email, **changes)
            teams = await people.teams_of_users(session)
            return _user_out(user, teams)

    @api.post("/v1/auth/accept-invite", response_model=TokenPairOut, tags=["auth"])
    async def accept_invite(self, body: AcceptInviteRequest, request: Request) -> TokenPairOut:
        """Set the invited user's password (once) and sign them in."""
        await self.limits.check_ip(request.client.host if request.client else None)
        refused = APIError(401, "invalid_invitation", "the invitation is unknown, used or expired")
        try:
            tenant_id = tenant_of_token(INVITE_PREFIX, body.invitation_token)
        except InvalidTokenError:
            raise refused from None
        async with tenant_transaction(self.sessions, tenant_id) as session:
            invitation = await people.invitation_for_update(
                session, token_sha256=token_digest(body.invitation_token)
            )
            now = datetime.now(UTC)
            if invitation is None or invitation.accepted_at or invitation.expires_at <= now:
                raise refused
            user = await session.get(User, invitation.user_id)
            if user is None or not user.active:
                raise refused
            invitation.accepted_at = now
            user.password_hash = await asyncio.to_thread(hash_password, body.password)
            return await self._token_pair(
                tenant_id=tenant_id, user_id=user.id, role=user.role.value, session=session
            )

    # --- teams ---------------------------------------------------------------------------------

    async def _teams_out(self, session: Any) -> list[TeamOut]:
        members = await people.team_members(session)
        return [
            TeamOut(id=t.id, name=t.name, members=members.get(t.id, []))
            for t in await people.list_teams(session)
        ]

    @api.get("/v1/teams", response_model=list[TeamOut], tags=["people"])
    async def list_teams(self, request: Request) -> list[TeamOut]:
        who = await self._identity_from(request)
        who.require("admin", "manager")
        async with tenant_transaction(self.sessions, who.tenant_id) as session:
            return await self._teams_out(session)

    @api.post("/v1/teams", response_model=TeamOut, status_code=201, tags=["people"])
    async def create_team(self, body: TeamIn, request: Request) -> TeamOut:
        who = await self._admin(request)
        try:
            async with tenant_transaction(self.sessions, who.tenant_id) as session:
                team = Team(tenant_id=who.tenant_id, name=body.name)
                session.add(team)
                await session.flush()
                await self._audit(session, who, request, "team.create", body.name)
        except IntegrityError:
            raise APIError(409, "team_exists", f"a team {body.name!r} exists already") from None
        return TeamOut(id=team.id, name=team.name, members=[])

    @api.put("/v1/teams/{team_id}/members", response_model=TeamOut, tags=["people"])
    async def set_team_members(
        self, team_id: uuid.UUID, body: TeamMembersIn, request: Request
    ) -> TeamOut:
        """Replace a team's members (managers included: a manager sees their teams)."""
        who = await self._admin(request)
        wanted = list(dict.fromkeys(body.user_ids))
        async with tenant_transaction(self.sessions, who.tenant_id) as session:
            team = await session.get(Team, team_id)
            if team is None:
                raise APIError(404, "team_not_found", "no such team")
            found = {u.id for u in await people.list_users(session, ids=set(wanted))}
            if missing := [str(u) for u in wanted if u not in found]:
                raise APIError(422, "unknown_user", f"no such users: {missing}")
            await people.set_team_members(
                session, tenant_id=who.tenant_id, team_id=team.id, user_ids=wanted
            )
            await self._audit(session, who, request, "team.members", team.name, members=len(wanted))
        return TeamOut(id=team.id, name=team.name, members=wanted)
