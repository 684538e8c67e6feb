"""the persona's model version each session was given, and each reply's time to first token

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-09 09:00:00

A canary gives a share of the new sessions a candidate version: the draw is made once, when
the session starts, and kept with it (``training_sessions.npc_model``), so every turn of the
session is answered by that version. ``turns.first_token_ms`` keeps what the trainee waited
for a reply's first token, so that versions can be compared on it from the stored rows.
Both tables are under row-level security already (0001).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("training_sessions", sa.Column("npc_model", sa.String(200), nullable=True))
    op.add_column("turns", sa.Column("first_token_ms", sa.Float(), nullable=True))


def downgrade() -> None:
    op.drop_column("turns", "first_token_ms")
    op.drop_column("training_sessions", "npc_model")
