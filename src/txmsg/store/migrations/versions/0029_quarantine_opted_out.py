"""Numbers held because their person texted STOP (`quarantine.opted_out`): Twilio's 21610 is
the recipient's opt-out, not a bounce, and the suppression list names it `sms_stop`.

Rows held for a 21610 before this revision keep its answer as their reason (a held row keeps
its first reason: `Twilio error 21610 (HTTP 400): ...`), so they are marked by it. What those
STOPs wrote elsewhere stays as it was: their delivery-log `bounced` entries, and the report
day counts (`bounced_hard`), which are totals that no longer say which send added what.

Revision ID: 0029
Revises: 0028
Create Date: 2026-12-08
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0029"
down_revision = "0028"
branch_labels = None
depends_on = None

quarantine = sa.table(
    "quarantine",
    sa.column("channel", sa.String()),
    sa.column("reason", sa.String()),
    sa.column("quarantined_at", sa.DateTime()),
    sa.column("opted_out", sa.Boolean()),
)

# What channels/twilio.py writes for error 21610, whatever the HTTP status and message.
STOP_REASON = "Twilio error 21610 (%"


def upgrade() -> None:
    op.add_column(
        "quarantine",
        sa.Column("opted_out", sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    op.get_bind().execute(
        sa.update(quarantine)
        .where(
            quarantine.c.channel == "sms",
            quarantine.c.quarantined_at.is_not(None),
            quarantine.c.reason.like(STOP_REASON),
        )
        .values(opted_out=True)
    )


def downgrade() -> None:
    # The rows stay held; the revision before reads them as hard bounces, as it wrote them.
    op.drop_column("quarantine", "opted_out")
