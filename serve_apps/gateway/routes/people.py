"""People: invitations, CSV import, roles, deactivation and teams (admins); the invited
person accepts in the auth routes.

An admin cannot demote or deactivate themselves (a company must not lock itself out).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, File, UploadFile
from sqlalchemy.exc import IntegrityError

from db import auth_repository as auth_repo
from db import people_repository as people
from db.engine import tenant_transaction
from db.models import Team, User, UserRole
from serve_apps.gateway.deps import (
    AdminDep,
    AuditDep,
    EditorDep,
    StateDep,
    TenantSessionDep,
)
from serve_apps.gateway.errors import APIError
from serve_apps.gateway.schemas.people import (
    ImportReportOut,
    InvitationOut,
    InviteRequest,
    TeamIn,
    TeamMembersIn,
    TeamOut,
    UserOut,
    UserPatch,
)
from serve_apps.gateway.use_cases.people import MAX_IMPORT_BYTES, import_people, invite

router = APIRouter(tags=["people"])


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


# --- users ---------------------------------------------------------------------------------


@router.get("/v1/users", response_model=list[UserOut])
async def list_users(who: EditorDep, session: TenantSessionDep) -> list[UserOut]:
    """Everyone in the company (admins); the members of their teams (managers)."""
    visible = await people.visible_user_ids(session, user_id=who.user_id, role=who.role)
    users = await people.list_users(session, ids=visible)
    teams = await people.teams_of_users(session)
    return [_user_out(u, teams) for u in users]


@router.post("/v1/users/invite", response_model=InvitationOut, status_code=201)
async def invite_user(
    body: InviteRequest, who: AdminDep, audit: AuditDep, state: StateDep
) -> InvitationOut:
    """Create a user without a password, and the one-use token that lets them set it."""
    try:
        async with tenant_transaction(state.sessions, who.tenant_id) as session:
            user, token, expires_at = await invite(session, who, body)
            await audit.record(session, "user.invite", user.email, role=body.role)
            teams = await people.teams_of_users(session)
    except IntegrityError:
        raise APIError(409, "user_exists", f"a user {body.email!r} exists already") from None
    return InvitationOut(user=_user_out(user, teams), invitation_token=token, expires_at=expires_at)


@router.post("/v1/users/import", response_model=ImportReportOut)
async def import_users(
    who: AdminDep,
    audit: AuditDep,
    state: StateDep,
    file: Annotated[UploadFile, File(description="CSV: email,display_name,role,team")],
) -> ImportReportOut:
    """Invite many people from a CSV (``email,display_name,role,team``), one row at a
    time: each row is created, already there, or refused with the reason."""

    async def invite_one(spec: InviteRequest) -> str:
        async with tenant_transaction(state.sessions, who.tenant_id) as session:
            _, token, _ = await invite(session, who, spec)
            await audit.record(session, "user.invite", spec.email, via="import")
        return token

    return await import_people(await file.read(MAX_IMPORT_BYTES + 1), invite_one)


@router.patch("/v1/users/{user_id}", response_model=UserOut)
async def update_user(
    user_id: uuid.UUID,
    body: UserPatch,
    who: AdminDep,
    audit: AuditDep,
    session: TenantSessionDep,
) -> UserOut:
    """Change a user's name or role, or deactivate them (their refresh tokens stop)."""
    if user_id == who.user_id and (body.role not in (None, "admin") or body.active is False):
        raise APIError(409, "self_lockout", "admins cannot demote or deactivate themselves")
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
            await auth_repo.revoke_all_for_user(session, user_id=user.id, now=datetime.now(UTC))
    await audit.record(session, "user.update", user.email, **changes)
    teams = await people.teams_of_users(session)
    return _user_out(user, teams)


# --- teams ---------------------------------------------------------------------------------


@router.get("/v1/teams", response_model=list[TeamOut])
async def list_teams(who: EditorDep, session: TenantSessionDep) -> list[TeamOut]:
    members = await people.team_members(session)
    return [
        TeamOut(id=t.id, name=t.name, members=members.get(t.id, []))
        for t in await people.list_teams(session)
    ]


@router.post("/v1/teams", response_model=TeamOut, status_code=201)
async def create_team(body: TeamIn, who: AdminDep, audit: AuditDep, state: StateDep) -> TeamOut:
    try:
        async with tenant_transaction(state.sessions, who.tenant_id) as session:
            team = Team(tenant_id=who.tenant_id, name=body.name)
            session.add(team)
            await session.flush()
            await audit.record(session, "team.create", body.name)
    except IntegrityError:
        raise APIError(409, "team_exists", f"a team {body.name!r} exists already") from None
    return TeamOut(id=team.id, name=team.name, members=[])


@router.put("/v1/teams/{team_id}/members", response_model=TeamOut)
async def set_team_members(
    team_id: uuid.UUID,
    body: TeamMembersIn,
    who: AdminDep,
    audit: AuditDep,
    session: TenantSessionDep,
) -> TeamOut:
    """Replace a team's members (managers included: a manager sees their teams)."""
    wanted = list(dict.fromkeys(body.user_ids))
    team = await session.get(Team, team_id)
    if team is None:
        raise APIError(404, "team_not_found", "no such team")
    found = {u.id for u in await people.list_users(session, ids=set(wanted))}
    if missing := [str(u) for u in wanted if u not in found]:
        raise APIError(422, "unknown_user", f"no such users: {missing}")
    await people.set_team_members(
        session, tenant_id=who.tenant_id, team_id=team.id, user_ids=wanted
    )
    await audit.record(session, "team.members", team.name, members=len(wanted))
    return TeamOut(id=team.id, name=team.name, members=wanted)
