"""the agents' data: rubrics, compliance rules, agent events, evaluations, skills, memory

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24 07:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from db.rls import disable_tenant_isolation, enable_tenant_isolation

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TENANT_TABLES = (
    "rubrics",
    "compliance_rules",
    "agent_events",
    "session_evaluations",
    "skill_scores",
    "trainee_memories",
)


def _jsonb(name: str, **kwargs) -> sa.Column:
    return sa.Column(name, postgresql.JSONB(astext_type=sa.Text()), nullable=False, **kwargs)


def _created_at() -> sa.Column:
    return sa.Column(
        "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
    )


def _tenant() -> list:
    return [
        sa.Column("tenant_id", sa.UUID(), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE"),
    ]


def upgrade() -> None:
    op.add_column("personas", _jsonb("topics", server_default=sa.text("'[]'::jsonb")))
    session_mode = postgresql.ENUM("practice", "assessment", "conversation", name="session_mode")
    session_mode.create(op.get_bind())
    op.add_column(
        "training_sessions",
        sa.Column("mode", session_mode, nullable=False, server_default="practice"),
    )
    op.create_table(
        "rubrics",
        sa.Column("id", sa.UUID(), primary_key=True),
        *_tenant(),
        sa.Column("slug", sa.String(64), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("pass_score", sa.Float(), nullable=False),
        _jsonb("criteria"),
        _created_at(),
        sa.UniqueConstraint("tenant_id", "slug"),
    )
    op.add_column(
        "scenarios",
        sa.Column(
            "rubric_id", sa.UUID(), sa.ForeignKey("rubrics.id", ondelete="SET NULL"), nullable=True
        ),
    )
    op.create_table(
        "compliance_rules",
        sa.Column("id", sa.UUID(), primary_key=True),
        *_tenant(),
        sa.Column("slug", sa.String(64), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        _jsonb("applies_to"),
        sa.Column("pattern", sa.Text(), nullable=True),
        sa.Column("trigger", sa.Text(), nullable=True),
        sa.Column("severity", sa.String(16), nullable=False),
        _created_at(),
        sa.UniqueConstraint("tenant_id", "slug"),
    )
    op.create_table(
        "agent_events",
        sa.Column("id", sa.BigInteger(), autoincrement=True, primary_key=True),
        *_tenant(),
        sa.Column(
            "session_id",
            sa.UUID(),
            sa.ForeignKey("training_sessions.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("reply_to_seq", sa.Integer(), nullable=True),
        sa.Column("agent", sa.String(32), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        _jsonb("payload"),
        _created_at(),
    )
    op.create_index("ix_agent_events_session_id", "agent_events", ["session_id"])
    op.create_table(
        "session_evaluations",
        sa.Column(
            "session_id",
            sa.UUID(),
            sa.ForeignKey("training_sessions.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        *_tenant(),
        sa.Column(
            "user_id", sa.UUID(), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("rubric_slug", sa.String(64), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("passed", sa.Boolean(), nullable=False),
        _jsonb("report"),
        _created_at(),
    )
    op.create_index("ix_session_evaluations_user_id", "session_evaluations", ["user_id"])
    op.create_table(
        "skill_scores",
        sa.Column("id", sa.BigInteger(), autoincrement=True, primary_key=True),
        *_tenant(),
        sa.Column(
            "user_id", sa.UUID(), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column(
            "session_id",
            sa.UUID(),
            sa.ForeignKey("training_sessions.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("skill", sa.String(64), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        _created_at(),
        sa.UniqueConstraint("session_id", "skill"),
    )
    op.create_index("ix_skill_scores_user_id", "skill_scores", ["user_id"])
    op.create_table(
        "trainee_memories",
        sa.Column("id", sa.UUID(), primary_key=True),
        *_tenant(),
        sa.Column(
            "user_id", sa.UUID(), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column(
            "session_id",
            sa.UUID(),
            sa.ForeignKey("training_sessions.id", ondelete="CASCADE"),
            nullable=False,
            unique=True,
        ),
        sa.Column("summary", sa.Text(), nullable=False),
        _jsonb("weak_skills"),
        _created_at(),
    )
    op.create_index("ix_trainee_memories_user_id", "trainee_memories", ["user_id"])
    for table in TENANT_TABLES:
        op.create_index(f"ix_{table}_tenant_id", table, ["tenant_id"])
    enable_tenant_isolation(TENANT_TABLES)


def downgrade() -> None:
    disable_tenant_isolation(TENANT_TABLES)
    for table in reversed(TENANT_TABLES):
        if table == "rubrics":
            op.drop_column("scenarios", "rubric_id")
        op.drop_table(table)
    op.drop_column("training_sessions", "mode")
    postgresql.ENUM(name="session_mode").drop(op.get_bind())
    op.drop_column("personas", "topics")
