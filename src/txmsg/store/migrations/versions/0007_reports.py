"""Reports (day aggregates), event tags, status webhooks and their outbox, interaction archives.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from txmsg.store.tables import BigId, Json, UTCDateTime

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "report_days",
        sa.Column("event_id", sa.String(64), primary_key=True),
        sa.Column("day", sa.Date(), primary_key=True),
        sa.Column("message_version", sa.Integer(), primary_key=True),
        sa.Column("metric", sa.String(24), primary_key=True),
        sa.Column("count", sa.BigInteger(), nullable=False),
    )
    op.create_table(
        "event_config_tags",
        sa.Column(
            "event_id",
            sa.String(64),
            sa.ForeignKey(
                "event_configs.event_id", name="fk_event_config_tags_event_id", ondelete="CASCADE"
            ),
            primary_key=True,
        ),
        sa.Column("tag", sa.String(64), primary_key=True),
    )
    op.create_index("ix_event_config_tags_tag", "event_config_tags", ["tag"])
    op.create_table(
        "event_webhooks",
        sa.Column(
            "event_id",
            sa.String(64),
            sa.ForeignKey(
                "event_configs.event_id", name="fk_event_webhooks_event_id", ondelete="CASCADE"
            ),
            primary_key=True,
        ),
        sa.Column("url", sa.String(2000), nullable=False),
        sa.Column("secret", sa.String(200), nullable=False),
    )
    op.create_table(
        "webhook_outbox",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("event_id", sa.String(64), nullable=False),
        sa.Column("pkey", sa.String(40), nullable=False),
        sa.Column("status", sa.String(16), nullable=True),
        sa.Column("interaction", sa.String(24), nullable=True),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("detail", Json, nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("due_at", UTCDateTime(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
    )
    op.create_index("ix_webhook_outbox_due_at", "webhook_outbox", ["due_at"])
    op.create_table(
        "interaction_archives",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("event_id", sa.String(64), nullable=False),
        sa.Column("path", sa.String(1000), nullable=False),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.Column("archived_at", UTCDateTime(), nullable=False),
        sa.Column("restored_at", UTCDateTime(), nullable=True),
    )
    op.create_index("ix_interaction_archives_event_id", "interaction_archives", ["event_id"])


def downgrade() -> None:
    op.drop_index("ix_interaction_archives_event_id", "interaction_archives")
    op.drop_table("interaction_archives")
    op.drop_index("ix_webhook_outbox_due_at", "webhook_outbox")
    op.drop_table("webhook_outbox")
    op.drop_table("event_webhooks")
    op.drop_index("ix_event_config_tags_tag", "event_config_tags")
    op.drop_table("event_config_tags")
    op.drop_table("report_days")
