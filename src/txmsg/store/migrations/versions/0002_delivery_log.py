"""The delivery log: interaction events of sent messages.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from txmsg.store.tables import BigId, Json, UTCDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "delivery_log",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("pkey", sa.String(40), nullable=False),
        sa.Column("event_id", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(24), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("detail", Json, nullable=True),
    )
    op.create_index("ix_delivery_log_pkey", "delivery_log", ["pkey"])
    op.create_index("ix_delivery_log_event_at", "delivery_log", ["event_id", "at"])


def downgrade() -> None:
    op.drop_index("ix_delivery_log_event_at", "delivery_log")
    op.drop_index("ix_delivery_log_pkey", "delivery_log")
    op.drop_table("delivery_log")
