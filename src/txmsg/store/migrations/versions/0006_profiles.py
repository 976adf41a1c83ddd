"""Profile-based messages: profiles, denylist, quarantine, fatigue rules, secrets, test profiles.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from txmsg.store.tables import BigId, Json, UTCDateTime

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("event_configs", sa.Column("reconciliation", Json, nullable=True))
    op.add_column("events", sa.Column("profile_id", sa.String(128), nullable=True))
    op.create_index("ix_events_profile", "events", ["profile_id"])
    op.create_table(
        "profiles",
        sa.Column("profile_id", sa.String(128), primary_key=True),
        sa.Column("email", sa.String(320), nullable=True),
        sa.Column("mobile_phone", sa.String(32), nullable=True),
        sa.Column("first_name", sa.String(200), nullable=True),
        sa.Column("last_name", sa.String(200), nullable=True),
        sa.Column("language", sa.String(35), nullable=True),
        sa.Column("attributes", Json, nullable=False),
        sa.Column("email_opt_out", sa.Boolean(), nullable=False),
        sa.Column("sms_opt_out", sa.Boolean(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_profiles_email", "profiles", ["email"])
    op.create_index("ix_profiles_mobile_phone", "profiles", ["mobile_phone"])
    op.create_table(
        "denylist",
        sa.Column("channel", sa.String(8), primary_key=True),
        sa.Column("address", sa.String(320), primary_key=True),
        sa.Column("reason", sa.String(500), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )
    op.create_table(
        "quarantine",
        sa.Column("channel", sa.String(8), primary_key=True),
        sa.Column("address", sa.String(320), primary_key=True),
        sa.Column("soft_bounces", sa.Integer(), nullable=False),
        sa.Column("quarantined_at", UTCDateTime(), nullable=True),
        sa.Column("reason", sa.String(500), nullable=True),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
    )
    op.create_table(
        "fatigue_rules",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("channel", sa.String(8), nullable=False),
        sa.Column("max_messages", sa.Integer(), nullable=True),
        sa.Column("max_attribute", sa.String(64), nullable=True),
        sa.Column("period", sa.String(32), nullable=False),
        sa.Column("period_seconds", sa.Integer(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
    )
    op.create_table(
        "fatigue_reservations",
        sa.Column("pkey", sa.String(40), primary_key=True),
        sa.Column("profile_id", sa.String(128), nullable=False),
        sa.Column("channel", sa.String(8), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
    )
    op.create_index(
        "ix_fatigue_reservations_profile_at", "fatigue_reservations", ["profile_id", "at"]
    )
    op.create_index("ix_fatigue_reservations_at", "fatigue_reservations", ["at"])
    op.create_table(
        "fatigue_exclusions",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("rule", sa.String(64), nullable=False),
        sa.Column("day", sa.String(10), nullable=False),
        sa.Column("pkey", sa.String(40), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_fatigue_exclusions_rule_day", "fatigue_exclusions", ["rule", "day"])
    op.create_table(
        "server_secrets",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("value", sa.String(128), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )
    op.create_table(
        "test_profiles",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("event_id", sa.String(64), nullable=False),
        sa.Column("ctx", Json, nullable=False),
        sa.Column("profile", Json, nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
    )


def downgrade() -> None:
    for table in (
        "test_profiles",
        "server_secrets",
        "fatigue_exclusions",
        "fatigue_reservations",
        "fatigue_rules",
        "quarantine",
        "denylist",
        "profiles",
    ):
        op.drop_table(table)
    op.drop_index("ix_events_profile", "events")
    op.drop_column("events", "profile_id")
    op.drop_column("event_configs", "reconciliation")
