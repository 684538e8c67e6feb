"""teams, invitations, courses and their assignments

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-24 07:45:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from db.rls import disable_tenant_isolation, enable_tenant_isolation

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TENANT_TABLES = ("teams", "team_members", "invitations", "courses", "course_assignments")


def _tenant() -> list:
    return [
        sa.Column("tenant_id", sa.UUID(), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE"),
    ]


def _created_at() -> sa.Column:
    return sa.Column(
        "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
    )


def _fk(name: str, table: str, **kwargs) -> sa.Column:
    return sa.Column(name, sa.UUID(), sa.ForeignKey(f"{table}.id", ondelete="CASCADE"), **kwargs)


def upgrade() -> None:
    op.create_table(
        "teams",
        sa.Column("id", sa.UUID(), primary_key=True),
        *_tenant(),
        sa.Column("name", sa.String(120), nullable=False),
        _created_at(),
        sa.UniqueConstraint("tenant_id", "name"),
    )
    op.create_table(
        "team_members",
        *_tenant(),
        _fk("team_id", "teams", primary_key=True),
        _fk("user_id", "users", primary_key=True),
    )
    op.create_index("ix_team_members_user_id", "team_members", ["user_id"])
    op.create_table(
        "invitations",
        sa.Column("id", sa.UUID(), primary_key=True),
        *_tenant(),
        _fk("user_id", "users", nullable=False),
        sa.Column("token_sha256", sa.String(64), nullable=False, unique=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("accepted_at", sa.DateTime(timezone=True), nullable=True),
        _created_at(),
    )
    op.create_index("ix_invitations_user_id", "invitations", ["user_id"])
    postgresql.ENUM("draft", "published", "archived", name="course_status").create(op.get_bind())
    course_status = postgresql.ENUM(name="course_status", create_type=False)
    op.create_table(
        "courses",
        sa.Column("id", sa.UUID(), primary_key=True),
        *_tenant(),
        sa.Column("slug", sa.String(64), nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("status", course_status, nullable=False),
        sa.Column("pass_score", sa.Float(), nullable=False),
        sa.Column(
            "mode",
            postgresql.ENUM(name="session_mode", create_type=False),
            nullable=False,
        ),
        sa.Column("scenario_ids", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        _created_at(),
        sa.UniqueConstraint("tenant_id", "slug"),
    )
    op.create_table(
        "course_assignments",
        sa.Column("id", sa.UUID(), primary_key=True),
        *_tenant(),
        _fk("course_id", "courses", nullable=False),
        _fk("team_id", "teams", nullable=True),
        _fk("user_id", "users", nullable=True),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=True),
        _created_at(),
        sa.CheckConstraint(
            "(team_id IS NULL) <> (user_id IS NULL)", name="ck_assignment_team_or_user"
        ),
    )
    op.create_index("ix_course_assignments_course_id", "course_assignments", ["course_id"])
    op.add_column(
        "training_sessions",
        sa.Column(
            "course_id", sa.UUID(), sa.ForeignKey("courses.id", ondelete="SET NULL"), nullable=True
        ),
    )
    for table in TENANT_TABLES:
        op.create_index(f"ix_{table}_tenant_id", table, ["tenant_id"])
    enable_tenant_isolation(TENANT_TABLES)


def downgrade() -> None:
    disable_tenant_isolation(TENANT_TABLES)
    op.drop_column("training_sessions", "course_id")
    for table in reversed(TENANT_TABLES):
        op.drop_table(table)
    postgresql.ENUM(name="course_status").drop(op.get_bind())
