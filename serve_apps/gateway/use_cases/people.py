"""Inviting people, one or many (a CSV file).

An invitation token names its company and is stored as its SHA-256; the person sets a
password with it once, within its lifetime.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from pydantic import TypeAdapter, ValidationError
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from db import people_repository as people
from db.models import TeamMember, User, UserRole
from serve_apps.gateway.auth import INVITATION_TTL, INVITE_PREFIX, new_tenant_token, token_digest
from serve_apps.gateway.errors import APIError
from serve_apps.gateway.identity import Identity
from serve_apps.gateway.schemas.people import ImportReportOut, ImportRowOut, InviteRequest

MAX_IMPORT_BYTES = 1 << 20
MAX_IMPORT_ROWS = 1000
IMPORT_COLUMNS = ("email", "display_name", "role", "team")
_invite = TypeAdapter(InviteRequest)


async def invite(
    session: AsyncSession, who: Identity, spec: InviteRequest
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


async def import_people(
    data: bytes, invite_one: Callable[[InviteRequest], Awaitable[str]]
) -> ImportReportOut:
    """Invite many people from a CSV (``email,display_name,role,team``), one row at a time:
    each row is created, already there, or refused with the reason.

    ``invite_one`` invites a person in a transaction of its own and gives their invitation
    token; an IntegrityError from it means they exist already.
    """
    if len(data) > MAX_IMPORT_BYTES:
        raise APIError(413, "upload_too_large", f"imports are limited to {MAX_IMPORT_BYTES} bytes")
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
            rows.append(await _import_row(line, raw, invite_one))
    except csv.Error as exc:
        raise APIError(422, "invalid_csv", f"line {reader.line_num}: {exc}") from None
    created, exists, invalid = (
        sum(r.status == s for r in rows) for s in ("created", "exists", "invalid")
    )
    return ImportReportOut(created=created, exists=exists, invalid=invalid, rows=rows)


async def _import_row(
    line: int, raw: dict[str, Any], invite_one: Callable[[InviteRequest], Awaitable[str]]
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
        token = await invite_one(spec)
    except IntegrityError:
        return ImportRowOut(row=line, email=email, status="exists")
    except APIError as exc:
        return ImportRowOut(row=line, email=email, status="invalid", error=exc.message)
    return ImportRowOut(row=line, email=email, status="created", invitation_token=token)
