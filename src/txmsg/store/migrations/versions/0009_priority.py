"""Priority lanes: an event configuration is `transactional` (the default) or `bulk`.

Existing configurations become `transactional`, the lane every event was queued in so far
(`events.priority` 0).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "event_configs",
        sa.Column("priority", sa.String(16), nullable=False, server_default="transactional"),
    )


def downgrade() -> None:
    with op.batch_alter_table("event_configs") as batch:
        batch.drop_column("priority")
