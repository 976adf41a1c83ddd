"""The queue's indexes become partial: they hold only the events still in flight.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

from __future__ import annotations

from alembic import op

from txmsg.store.tables import EVENT_INDEXES

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_events_claim", "events")
    op.drop_index("ix_events_event_status", "events")
    op.drop_index("ix_events_expiry", "events")
    for index in EVENT_INDEXES:
        op.create_index(
            index.name,
            "events",
            [c.name for c in index.columns],
            sqlite_where=index.dialect_options["sqlite"]["where"],
            postgresql_where=index.dialect_options["postgresql"]["where"],
        )


def downgrade() -> None:
    for index in EVENT_INDEXES:
        assert index.name is not None, "the queue's indexes are all named"
        op.drop_index(index.name, "events")
    op.create_index("ix_events_claim", "events", ["status", "priority", "due_at"])
    op.create_index("ix_events_event_status", "events", ["event_id", "status"])
    op.create_index("ix_events_expiry", "events", ["status", "expires_at"])
