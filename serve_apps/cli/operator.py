"""``salesboost operator``: what only the platform operator does, outside any one company.

Creating a company with its first admin needs the schema owner's connection (the app's own
role may not insert companies: least privilege). Support access is a deliberate
cross-company operation: it mints a short-lived admin token for the operator's support user
in that company and writes the reason to that company's audit log, where its admins see it.
The model comparison over every company is one too: it reads each company's rows in turn
(acting as that company, row-level security holding) and says so in each company's log.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import uuid
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer

from db import audit
from db import model_version_repository as versions_repo
from db import people_repository as people
from db import repositories as repo
from db import tenant_repository as tenants
from db.engine import act_as_tenant, create_engine, session_factory
from db.models import UserRole
from serve_apps.contracts.specs import SLUG_PATTERN

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from serve_apps.gateway.auth import AccessTokens
    from serve_apps.model_lifecycle.comparison import ModelComparison

operator_app = typer.Typer(
    help="Platform operator: create companies, audited support access.", no_args_is_help=True
)

SUPPORT_EMAIL = "platform-support@salesboost.invalid"
SLUG = re.compile(SLUG_PATTERN)
T = TypeVar("T")


@contextlib.contextmanager
def owner_database() -> Iterator[str]:
    """The schema owner's URL, migrated to head: the configured migration URL, or the embedded
    server under the data directory (started for the command, or the running one reused)."""
    from serve_apps.settings import get_settings

    settings = get_settings()
    url = settings.migration_database_url or settings.database_url
    server = None
    if url is None:
        from db.embedded import DATABASE, OWNER_ROLE, ensure_roles_and_database, start_postgres

        pgdata = settings.data_dir / "postgres"
        already_running = (pgdata / "postmaster.pid").exists()
        server, socket_dir = start_postgres(pgdata)
        if already_running:
            server = None  # `salesboost up` owns it; leave it running
        ensure_roles_and_database(socket_dir)
        url = f"postgresql+psycopg://{OWNER_ROLE}@/{DATABASE}?host={socket_dir}"
    from db.migrate import upgrade

    try:
        upgrade(url)
        yield url
    finally:
        if server is not None:
            server.cleanup()


def as_owner(url: str, use: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """``use(session)`` in one transaction as the schema owner at ``url``, who may insert
    companies; row-level security still holds inside a company (each use case acts as the
    company it writes)."""

    async def run() -> T:
        engine = create_engine(url, pool_size=1)
        try:
            async with session_factory(engine)() as session, session.begin():
                return await use(session)
        finally:
            await engine.dispose()

    return asyncio.run(run())


async def create_tenant(
    session: AsyncSession, *, slug: str, name: str, admin_email: str, admin_name: str
) -> tuple[uuid.UUID, str]:
    """The company, its first admin (no password yet) and their invitation token."""
    from serve_apps.gateway.auth import (
        INVITATION_TTL,
        INVITE_PREFIX,
        new_tenant_token,
        token_digest,
    )

    if not SLUG.match(slug):
        raise ValueError(f"{slug!r}: use lowercase letters, digits and dashes")
    if await tenants.tenant_by_slug(session, slug=slug) is not None:
        raise ValueError(f"a company {slug!r} exists already")
    tenant = await tenants.add_tenant(session, slug=slug, name=name)
    await session.execute(*act_as_tenant(tenant.id))
    admin = await people.add_user(
        session,
        tenant_id=tenant.id,
        email=admin_email.lower(),
        display_name=admin_name,
        role=UserRole.admin,
    )
    token = new_tenant_token(INVITE_PREFIX, tenant.id)
    await people.add_invitation(
        session,
        tenant_id=tenant.id,
        user_id=admin.id,
        token_sha256=token_digest(token),
        expires_at=datetime.now(UTC) + INVITATION_TTL,
    )
    await audit.record(
        session,
        tenant_id=tenant.id,
        actor_user_id=None,
        action="operator.create_tenant",
        target=slug,
        details={"admin": admin.email},
    )
    return tenant.id, token


async def support_access(
    session: AsyncSession, *, slug: str, reason: str, tokens: AccessTokens
) -> str:
    """A short-lived admin access token into ``slug``, recorded in its audit log."""
    from serve_apps.gateway.auth import AccessClaims

    if len(reason.strip()) < 10:
        raise ValueError("say why (at least 10 characters): the company's admins will read it")
    tenant = await tenants.tenant_by_slug(session, slug=slug)
    if tenant is None:
        raise ValueError(f"no company {slug!r}")
    await session.execute(*act_as_tenant(tenant.id))
    try:
        support = await repo.user_by_email(session, email=SUPPORT_EMAIL)
    except repo.NotFoundError:  # no password: it can only act through these audited tokens
        support = await people.add_user(
            session,
            tenant_id=tenant.id,
            email=SUPPORT_EMAIL,
            display_name="Platform support",
            role=UserRole.admin,
        )
    await audit.record(
        session,
        tenant_id=tenant.id,
        actor_user_id=support.id,
        action="operator.support_access",
        target=slug,
        details={"reason": reason.strip(), "minutes": tokens.ttl_s // 60},
    )
    return tokens.issue(AccessClaims(tenant_id=tenant.id, user_id=support.id, role="admin"))


async def compare_model_versions(
    session: AsyncSession, *, days: int, reason: str
) -> ModelComparison:
    """The persona's model versions compared over every company's sessions of the last
    ``days`` days, each company read as itself and told in its audit log."""
    from serve_apps.model_lifecycle.comparison import compare_versions

    if len(reason.strip()) < 10:
        raise ValueError("say why (at least 10 characters): each company's admins will read it")
    since = datetime.now(UTC) - timedelta(days=days)
    replies: list[versions_repo.ReplyRow] = []
    sessions: list[versions_repo.SessionRow] = []
    for tenant in await tenants.all_tenants(session):
        await session.execute(*act_as_tenant(tenant.id))
        replies += await versions_repo.reply_rows(session, since=since)
        sessions += await versions_repo.session_rows(session, since=since)
        await audit.record(
            session,
            tenant_id=tenant.id,
            actor_user_id=None,
            action="operator.model_compare",
            target="npc",
            details={"reason": reason.strip(), "days": days},
        )
        await session.flush()  # as this company: the next one's policy would refuse the row
    return compare_versions(replies, sessions, role="npc", scope="every company", since=since)


@operator_app.command("create-tenant")
def create_tenant_command(
    slug: Annotated[str, typer.Argument(help="The company's slug (sign-in uses it).")],
    name: Annotated[str, typer.Option(help="The company's name.")],
    admin_email: Annotated[str, typer.Option(help="The first admin's email.")],
    admin_name: Annotated[str, typer.Option(help="The first admin's name.")] = "Admin",
) -> None:
    """Create a company and its first admin; prints the admin's invitation token."""
    from serve_apps.gateway.auth import INVITATION_TTL

    try:
        with owner_database() as url:
            tenant_id, token = as_owner(
                url,
                lambda session: create_tenant(
                    session, slug=slug, name=name, admin_email=admin_email, admin_name=admin_name
                ),
            )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    typer.echo(f"created {slug} ({tenant_id}) with admin {admin_email}")
    typer.echo(f"the admin sets a password with (valid {INVITATION_TTL.days} days, once):")
    typer.echo(
        "  POST /v1/auth/accept-invite "
        f'{{"invitation_token": "{token}", "password": "<12+ characters>"}}'
    )


@operator_app.command("support-access")
def support_access_command(
    slug: Annotated[str, typer.Argument(help="The company to act in.")],
    reason: Annotated[str, typer.Option(help="Why; written to the company's audit log.")],
    minutes: Annotated[int, typer.Option(min=1, max=60, help="Token lifetime.")] = 15,
) -> None:
    """Print a short-lived admin token into a company; the company's audit log records it."""
    from cluster.local_stack import signing_secret
    from serve_apps.gateway.auth import AccessTokens
    from serve_apps.settings import get_settings

    settings = get_settings()
    tokens = AccessTokens(
        secret=signing_secret(settings),
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        ttl_s=minutes * 60,
    )
    try:
        with owner_database() as url:
            token = as_owner(
                url,
                lambda session: support_access(session, slug=slug, reason=reason, tokens=tokens),
            )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    typer.echo(token)


@operator_app.command("model-compare")
def model_compare_command(
    reason: Annotated[str, typer.Option(help="Why; written to every company's audit log.")],
    days: Annotated[int, typer.Option(min=1, max=366, help="Sessions started since.")] = 30,
    as_json: Annotated[bool, typer.Option("--json", help="As JSON.")] = False,
) -> None:
    """The persona's model versions compared over every company's stored sessions (the API's
    `salesboost models compare` reads the caller's company only)."""
    import json

    from serve_apps.cli.models import show_comparison

    try:
        with owner_database() as url:
            comparison = as_owner(
                url, lambda session: compare_model_versions(session, days=days, reason=reason)
            )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    found = comparison.model_dump(mode="json")
    typer.echo(json.dumps(found, indent=2)) if as_json else show_comparison(found)


@operator_app.command("admission-limit")
def admission_limit_command(
    limit: Annotated[
        int | None,
        typer.Argument(min=1, max=100_000, help="Live conversations at once; none: show it."),
    ] = None,
    clear: Annotated[
        bool, typer.Option("--clear", help="Back to the configured max_live_conversations.")
    ] = False,
) -> None:
    """Show or change, at run time, how many conversations may be live at once before new
    ones get 503 overloaded (every gateway replica reads it from Redis at once)."""
    from redis.asyncio import Redis

    from serve_apps.gateway.admission import Admission, current_limit_override, set_limit_override
    from serve_apps.settings import get_settings

    settings = get_settings()
    if not settings.redis_url:
        typer.echo("error: set REDIS_URL to the running deployment's Redis", err=True)
        raise typer.Exit(2)

    async def run() -> str:
        redis = Redis.from_url(settings.redis_url)
        try:
            if clear or limit is not None:
                await set_limit_override(redis, None if clear else limit)
            override = await current_limit_override(redis)
            live = await Admission(redis, limit=settings.max_live_conversations).live()
        finally:
            await redis.aclose()
        source = "set at run time" if override is not None else "configured"
        chosen = override if override is not None else settings.max_live_conversations
        return f"limit {chosen} ({source}); live now {live}"

    typer.echo(asyncio.run(run()))
