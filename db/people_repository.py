"""People: users, teams, invitations; and who a manager may see."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import Invitation, Team, TeamMember, User, UserRole


async def add_user(
    session: AsyncSession, *, tenant_id: uuid.UUID, email: str, display_name: str, role: UserRole
) -> User:
    """A person without a password yet: they set one with an invitation."""
    user = User(tenant_id=tenant_id, email=email, display_name=display_name, role=role)
    session.add(user)
    await session.flush()
    return user


async def list_users(session: AsyncSession, *, ids: set[uuid.UUID] | None = None) -> list[User]:
    query = select(User).order_by(User.email)
    if ids is not None:
        query = query.where(User.id.in_(ids))
    return list(await session.scalars(query))


async def teams_of_users(session: AsyncSession) -> dict[uuid.UUID, list[str]]:
    rows = await session.execute(
        select(TeamMember.user_id, Team.name).join(Team, Team.id == TeamMember.team_id)
    )
    teams: dict[uuid.UUID, list[str]] = {}
    for user_id, name in rows:
        teams.setdefault(user_id, []).append(name)
    return teams


async def visible_user_ids(
    session: AsyncSession, *, user_id: uuid.UUID, role: str
) -> set[uuid.UUID] | None:
    """Whose training this user may see: None (everyone in the company) for an admin; the
    members of their teams, and themselves, for a manager; themselves for a trainee."""
    if role == "admin":
        return None
    if role != "manager":
        return {user_id}
    my_teams = select(TeamMember.team_id).where(TeamMember.user_id == user_id)
    members = await session.scalars(
        select(TeamMember.user_id).where(TeamMember.team_id.in_(my_teams))
    )
    return {user_id, *members}


async def list_teams(session: AsyncSession) -> list[Team]:
    return list(await session.scalars(select(Team).order_by(Team.name)))


async def team_members(session: AsyncSession) -> dict[uuid.UUID, list[uuid.UUID]]:
    members: dict[uuid.UUID, list[uuid.UUID]] = {}
    for team_id, user_id in await session.execute(select(TeamMember.team_id, TeamMember.user_id)):
        members.setdefault(team_id, []).append(user_id)
    return members


async def teams_by_name(session: AsyncSession, names: list[str]) -> dict[str, Team]:
    if not names:
        return {}
    return {t.name: t for t in await session.scalars(select(Team).where(Team.name.in_(names)))}


async def set_team_members(
    session: AsyncSession, *, tenant_id: uuid.UUID, team_id: uuid.UUID, user_ids: list[uuid.UUID]
) -> None:
    await session.execute(delete(TeamMember).where(TeamMember.team_id == team_id))
    session.add_all(
        TeamMember(tenant_id=tenant_id, team_id=team_id, user_id=user_id) for user_id in user_ids
    )


async def add_invitation(
    session: AsyncSession,
    *,
    tenant_id: uuid.UUID,
    user_id: uuid.UUID,
    token_sha256: str,
    expires_at: datetime,
) -> None:
    session.add(
        Invitation(
            tenant_id=tenant_id, user_id=user_id, token_sha256=token_sha256, expires_at=expires_at
        )
    )


async def invitation_for_update(session: AsyncSession, *, token_sha256: str) -> Invitation | None:
    return await session.scalar(
        select(Invitation).where(Invitation.token_sha256 == token_sha256).with_for_update()
    )
