"""When an attempt that ended unsent first reached a provider (`events.attempted_at`): feedback
(a bounce, a spam complaint) is accepted only for a message a provider saw, and `sent_at` alone
cannot say it of an event retried after a 4xx.

Events waiting for a retry, or that expired while retrying, are taken as seen: their reason is
the provider's error (a few of them may be errors of no provider: their feedback is accepted,
as it was before).

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from txmsg.store.tables import UTCDateTime

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None

events = sa.table(
    "events",
    sa.column("status", sa.String()),
    sa.column("reason", sa.Text()),
    sa.column("sent_at", UTCDateTime()),
    sa.column("updated_at", UTCDateTime()),
    sa.column("attempted_at", UTCDateTime()),
)


def upgrade() -> None:
    with op.batch_alter_table("events") as batch:
        batch.add_column(sa.Column("attempted_at", UTCDateTime(), nullable=True))
    op.get_bind().execute(
        sa.update(events)
        .where(
            events.c.sent_at.is_(None),
            sa.or_(
                sa.and_(
                    events.c.status.in_(["pending", "processing", "paused"]),
                    events.c.reason.like("retrying: %"),
                ),
                sa.and_(
                    events.c.status == "tooOld",
                    events.c.reason.like("expired while retrying: %"),
                ),
            ),
        )
        .values(attempted_at=events.c.updated_at)
    )


def downgrade() -> None:
    with op.batch_alter_table("events") as batch:
        batch.drop_column("attempted_at")
