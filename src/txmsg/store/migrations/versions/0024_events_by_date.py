"""An index of each event type's triggers by date, for the latest-events list's pages.

`GET /api/v1/events/{eventId}` read the newest triggers by walking the whole table backwards by
id and keeping the event type's; its pages (a cursor, `since`/`until`) are now each one range of
`(event_id, event_date, id)`. None of these columns change after the insert, so status changes
never touch it. Partial, on a WHERE every row meets: only the queries stating it use it
(SQLite's planner would otherwise take it over the queue's partial indexes on `event_id`).

Numbered 0024: 0023 is taken on a branch not merged yet (h/feedback: events.attempted_at); the
one merged second chains after the other.

Revision ID: 0024
Revises: 0022
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0024"
down_revision = "0023"
branch_labels = None
depends_on = None

BY_DATE = sa.text("event_date IS NOT NULL")


def upgrade() -> None:
    op.create_index(
        "ix_events_event_date",
        "events",
        ["event_id", "event_date", "id"],
        sqlite_where=BY_DATE,
        postgresql_where=BY_DATE,
    )


def downgrade() -> None:
    op.drop_index("ix_events_event_date", "events")
