"""compliance rules decided by semantic similarity: example phrasings and a threshold

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 22:30:00

Rubric checks live in the rubric's ``criteria`` document and need no column; a compliance
rule's fields are columns, so ``semantic`` rules get theirs. ``kind`` grows to 24 characters
(``knowledge_claims``).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "compliance_rules",
        sa.Column(
            "examples",
            postgresql.JSONB(astext_type=sa.Text()),
            nullable=False,
            server_default=sa.text("'[]'::jsonb"),
        ),
    )
    op.add_column(
        "compliance_rules",
        sa.Column("threshold", sa.Float(), nullable=False, server_default=sa.text("0.55")),
    )
    op.alter_column("compliance_rules", "kind", type_=sa.String(24))


def downgrade() -> None:
    op.execute("DELETE FROM compliance_rules WHERE kind IN ('semantic', 'knowledge_claims')")
    op.alter_column("compliance_rules", "kind", type_=sa.String(16))
    op.drop_column("compliance_rules", "threshold")
    op.drop_column("compliance_rules", "examples")
