"""what a scenario's persona reads: the customer's own papers and the vendor's website

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 06:45:00

Two knowledge-base slugs per scenario, both optional; the seller's ``knowledge_base`` keeps
grounding the coach and the claims check, never the persona.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = ("customer_knowledge_base", "vendor_website_knowledge_base")


def upgrade() -> None:
    for column in COLUMNS:
        op.add_column("scenarios", sa.Column(column, sa.String(30), nullable=True))


def downgrade() -> None:
    for column in reversed(COLUMNS):
        op.drop_column("scenarios", column)
