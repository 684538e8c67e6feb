"""accounts: password hashes, active flag, refresh tokens

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24 05:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from db.rls import disable_tenant_isolation, enable_tenant_isolation

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("users", sa.Column("password_hash", sa.String(length=200), nullable=True))
    op.add_column(
        "users", sa.Column("active", sa.Boolean(), server_default=sa.text("true"), nullable=False)
    )
    op.create_table(
        "refresh_tokens",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("tenant_id", sa.UUID(), nullable=False),
        sa.Column("user_id", sa.UUID(), nullable=False),
        sa.Column("token_sha256", sa.String(length=64), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("token_sha256"),
    )
    op.create_index("ix_refresh_tokens_tenant_id", "refresh_tokens", ["tenant_id"])
    op.create_index("ix_refresh_tokens_user_id", "refresh_tokens", ["user_id"])
    enable_tenant_isolation(["refresh_tokens"])


def downgrade() -> None:
    disable_tenant_isolation(["refresh_tokens"])
    op.drop_table("refresh_tokens")
    op.drop_column("users", "active")
    op.drop_column("users", "password_hash")
