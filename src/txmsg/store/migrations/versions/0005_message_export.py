"""The message export dataset, export flows and their runs.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from txmsg.store.tables import BigId, Json, UTCDateTime

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "message_export",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("ingestion_us", sa.BigInteger(), nullable=False),
        sa.Column("timestamp_us", sa.BigInteger(), nullable=False),
        sa.Column("channel", sa.String(8), nullable=False),
        sa.Column("message_id", sa.String(40), nullable=False),
        sa.Column("event_id", sa.String(64), nullable=False),
        sa.Column("publication_id", sa.String(80), nullable=True),
        sa.Column("is_test", sa.Boolean(), nullable=False),
        sa.Column("profile_id", sa.String(200), nullable=True),
        sa.Column("recipient_email", sa.String(320), nullable=True),
        sa.Column("recipient_name", sa.Text(), nullable=True),
        sa.Column("recipient_number", sa.String(32), nullable=True),
        sa.Column("sender_email", sa.String(320), nullable=True),
        sa.Column("sender_name", sa.Text(), nullable=True),
        sa.Column("sender_reply_to", sa.String(320), nullable=True),
        sa.Column("sender_numbers", sa.Text(), nullable=True),  # a JSON array
        sa.Column("subject", sa.Text(), nullable=True),
        sa.Column("html", sa.Text(), nullable=True),
        sa.Column("text", sa.Text(), nullable=True),
        sa.Column("message", sa.Text(), nullable=True),
    )
    op.create_index("ix_message_export_ingestion", "message_export", ["ingestion_us"])
    op.create_index("ix_message_export_message_id", "message_export", ["message_id"])
    op.create_table(
        "export_flows",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("format", sa.String(16), nullable=False),
        sa.Column("destination", Json, nullable=False),
        sa.Column("secrets", Json, nullable=False),
        sa.Column("schedule", sa.String(32), nullable=False),
        sa.Column("compression", sa.String(16), nullable=False),
        sa.Column("watermark", sa.BigInteger(), nullable=False),
        sa.Column("next_run_at", UTCDateTime(), nullable=False),
        sa.Column("lock_token", sa.String(32), nullable=True),
        sa.Column("lock_until", UTCDateTime(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
    )
    op.create_table(
        "export_runs",
        sa.Column(
            "flow",
            sa.String(64),
            sa.ForeignKey("export_flows.name", name="fk_export_runs_flow", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("run", sa.Integer(), primary_key=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("from_id", sa.BigInteger(), nullable=False),
        sa.Column("to_id", sa.BigInteger(), nullable=False),
        sa.Column("records", sa.BigInteger(), nullable=False),
        sa.Column("files", Json, nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("finished_at", UTCDateTime(), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("export_runs")
    op.drop_table("export_flows")
    op.drop_index("ix_message_export_message_id", "message_export")
    op.drop_index("ix_message_export_ingestion", "message_export")
    op.drop_table("message_export")
