"""the manager's review of a session: an adjusted score with a reason, comments on turns

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-25 09:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from db.rls import disable_tenant_isolation, enable_tenant_isolation

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TENANT_TABLES = ("session_reviews", "review_comments")


def _tenant() -> list:
    return [
        sa.Column("tenant_id", sa.UUID(), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE"),
    ]


def _at(name: str) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False)


def upgrade() -> None:
    op.create_table(
        "session_reviews",
        sa.Column(
            "session_id",
            sa.UUID(),
            sa.ForeignKey("training_sessions.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        *_tenant(),
        sa.Column("reviewer_id", sa.UUID(), sa.ForeignKey("users.id", ondelete="SET NULL")),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("passed", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        _at("created_at"),
        _at("updated_at"),
        sa.CheckConstraint("score >= 0 AND score <= 100", name="ck_session_reviews_score"),
    )
    op.create_table(
        "review_comments",
        sa.Column("id", sa.UUID(), primary_key=True),
        *_tenant(),
        sa.Column(
            "session_id",
            sa.UUID(),
            sa.ForeignKey("training_sessions.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("author_id", sa.UUID(), sa.ForeignKey("users.id", ondelete="SET NULL")),
        sa.Column("text", sa.Text(), nullable=False),
        _at("created_at"),
    )
    op.create_index("ix_review_comments_session_id", "review_comments", ["session_id"])
    enable_tenant_isolation(TENANT_TABLES)


def downgrade() -> None:
    disable_tenant_isolation(TENANT_TABLES)
    op.drop_table("review_comments")
    op.drop_table("session_reviews")
