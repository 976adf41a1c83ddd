"""Rate limits and key rotation: shared rate-limit counters, a key's limit, its old secret.

`rate_windows` holds one counter per scope (a channel configuration's cap, an API key's
bucket); `api_keys` gets its `rate_limit` and, after a rotation, the old secret's hash and how
long it stays valid. Channel caps live in the channel configuration's settings (JSON).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

Json = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "rate_windows",
        sa.Column("scope", sa.String(128), primary_key=True),
        sa.Column("window_start", sa.BigInteger(), nullable=False),
        sa.Column("cap", sa.BigInteger(), nullable=False),
        sa.Column("used", sa.BigInteger(), nullable=False),
        sa.Column("granted", sa.BigInteger(), nullable=False),
    )
    # Plain ADD COLUMN and an index: no table copy on SQLite.
    op.add_column("api_keys", sa.Column("rate_limit", Json, nullable=True))
    op.add_column("api_keys", sa.Column("previous_hash", sa.String(64), nullable=True))
    op.add_column(
        "api_keys", sa.Column("previous_until", sa.DateTime(timezone=True), nullable=True)
    )
    op.create_index("ix_api_keys_previous_hash", "api_keys", ["previous_hash"], unique=True)


def downgrade() -> None:
    op.drop_index("ix_api_keys_previous_hash", table_name="api_keys")
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("previous_until")
        batch.drop_column("previous_hash")
        batch.drop_column("rate_limit")
    op.drop_table("rate_windows")
