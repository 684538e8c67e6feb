"""``salesboost operator``: what only the platform operator does, outside any one company.

Creating a company with its first admin needs the schema owner's connection (the app's own
role may not insert companies: least privilege). Support access is a deliberate
cross-company operation: it mints a short-lived admin token for the operator's support user
in that company and writes the reason to that company's audit log, where its admins see it.
"""

from __future__ import annotations

import contextlib
import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated

import typer
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from db.engine import act_as_tenant
from db.models import AuditEvent, Invitation, Tenant, User, UserRole
from serve_apps.contracts.specs import SLUG_PATTERN

if TYPE_CHECKING:
    from serve_apps.gateway.auth import AccessTokens

operator_app = typer.Typer(
    help="Platform operator: create companies, audited support access.", no_args_is_help=True
)

SUPPORT_EMAIL = "platform-support@salesboost.invalid"
SLUG = re.compile(SLUG_PATTERN)


@contextlib.contextmanager
def owner_session() -> Iterator[Session]:
    """A session as the schema owner: the configured migration URL, or the embedded server
    under the data directory (started for the command, or the running one reused)."""
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

    upgrade(url)
    engine = create_engine(url)
    try:
        with Session(engine) as session, session.begin():
            yield session
    finally:
        engine.dispose()
        if server is not None:
            server.cleanup()


def _act_as(session: Session, tenant_id: uuid.UUID) -> None:
    session.execute(*act_as_tenant(tenant_id))


def create_tenant(
    session: Session, *, slug: str, name: str, admin_email: str, admin_name: str
) -> tuple[uuid.UUID, str]:
    """The company, its first admin (no password yet) and their invitation token."""
    from serve_apps.gateway.auth import INVITE_PREFIX, new_tenant_token, token_digest
    from serve_apps.gateway.people_routes import INVITATION_TTL

    if not SLUG.match(slug):
        raise ValueError(f"{slug!r}: use lowercase letters, digits and dashes")
    if session.scalar(select(Tenant.id).where(Tenant.slug == slug)) is not None:
        raise ValueError(f"a company {slug!r} exists already")
    tenant = Tenant(slug=slug, name=name)
    session.add(tenant)
    session.flush()
    _act_as(session, tenant.id)
    admin = User(
        tenant_id=tenant.id, email=admin_email.lower(), display_name=admin_name, role=UserRole.admin
    )
    session.add(admin)
    session.flush()
    token = new_tenant_token(INVITE_PREFIX, tenant.id)
    session.add(
        Invitation(
            tenant_id=tenant.id,
            user_id=admin.id,
            token_sha256=token_digest(token),
            expires_at=datetime.now(UTC) + INVITATION_TTL,
        )
    )
    session.add(
        AuditEvent(
            tenant_id=tenant.id,
            action="operator.create_tenant",
            target=slug,
            details={"admin": admin.email},
        )
    )
    return tenant.id, token


def support_access(session: Session, *, slug: str, reason: str, tokens: AccessTokens) -> str:
    """A short-lived admin access token into ``slug``, recorded in its audit log."""
    from serve_apps.gateway.auth import AccessClaims

    if len(reason.strip()) < 10:
        raise ValueError("say why (at least 10 characters): the company's admins will read it")
    tenant = session.scalar(select(Tenant).where(Tenant.slug == slug))
    if tenant is None:
        raise ValueError(f"no company {slug!r}")
    _act_as(session, tenant.id)
    support = session.scalar(select(User).where(User.email == SUPPORT_EMAIL))
    if support is None:  # no password: it can only act through these audited tokens
        support = User(
            tenant_id=tenant.id,
            email=SUPPORT_EMAIL,
            display_name="Platform support",
            role=UserRole.admin,
        )
        session.add(support)
        session.flush()
    session.add(
        AuditEvent(
            tenant_id=tenant.id,
            actor_user_id=support.id,
            action="operator.support_access",
            target=slug,
            details={"reason": reason.strip(), "minutes": tokens.ttl_s // 60},
        )
    )
    return tokens.issue(AccessClaims(tenant_id=tenant.id, user_id=support.id, role="admin"))


@operator_app.command("create-tenant")
def create_tenant_command(
    slug: Annotated[str, typer.Argument(help="The company's slug (sign-in uses it).")],
    name: Annotated[str, typer.Option(help="The company's name.")],
    admin_email: Annotated[str, typer.Option(help="The first admin's email.")],
    admin_name: Annotated[str, typer.Option(help="The first admin's name.")] = "Admin",
) -> None:
    """Create a company and its first admin; prints the admin's invitation token."""
    try:
        with owner_session() as session:
            tenant_id, token = create_tenant(
                session, slug=slug, name=name, admin_email=admin_email, admin_name=admin_name
            )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    typer.echo(f"created {slug} ({tenant_id}) with admin {admin_email}")
    typer.echo("the admin sets a password with (valid 7 days, once):")
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
        with owner_session() as session:
            token = support_access(session, slug=slug, reason=reason, tokens=tokens)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    typer.echo(token)
