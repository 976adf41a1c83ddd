"""SMS events: the recipient's mobile number and the provider's message id (Twilio SID).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("events") as batch:
        batch.add_column(sa.Column("mobile_phone", sa.String(16), nullable=True))
        batch.add_column(sa.Column("provider_message_id", sa.String(64), nullable=True))
    op.create_index(
        "ix_events_provider_message_id",
        "events",
        ["provider_message_id"],
        sqlite_where=sa.text("provider_message_id IS NOT NULL"),
        postgresql_where=sa.text("provider_message_id IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_events_provider_message_id", "events")
    with op.batch_alter_table("events") as batch:
        batch.drop_column("provider_message_id")
        batch.drop_column("mobile_phone")
