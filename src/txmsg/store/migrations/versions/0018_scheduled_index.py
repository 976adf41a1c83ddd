"""Events scheduled for later get an index of their own (partial: only they are in it).

The housekeeping sweep looks up ahead the profiles of scheduled profile-based events; without
this index it walked the whole queue to find them (about 50 ms of the one SQLite writer at
100,000 queued events, every sweep).

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

WHERE = sa.text("scheduled_at IS NOT NULL")


def upgrade() -> None:
    op.create_index(
        "ix_events_scheduled",
        "events",
        ["scheduled_at"],
        sqlite_where=WHERE,
        postgresql_where=WHERE,
    )


def downgrade() -> None:
    op.drop_index("ix_events_scheduled", "events")
