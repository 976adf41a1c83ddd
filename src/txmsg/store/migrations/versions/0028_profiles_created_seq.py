"""A profile's place in the import that created it (`profiles.created_seq`): profiles sharing an
email are reconciled with the one created first, and the rows of one import share their
`created_at`, so the file's order breaks the tie (0 for profiles made one at a time, and for
those created before this column).

Revision ID: 0028
Revises: 0027
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0028"
down_revision = "0027"
branch_labels = None
depends_on = None


# Plain ALTER TABLE on both engines (SQLite 3.35+ drops a column in place): a batch copy of
# the table would lose the expression index ix_profiles_email_lower.
def upgrade() -> None:
    op.add_column(
        "profiles", sa.Column("created_seq", sa.Integer(), nullable=False, server_default="0")
    )


def downgrade() -> None:
    op.drop_column("profiles", "created_seq")
