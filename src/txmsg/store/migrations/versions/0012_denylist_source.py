"""Deliverability: where a denylist entry came from, and which provider sent an event.

`denylist.source`: where an entry came from: `admin` (the API), `import` (a CSV import) or `spam` (a
spam complaint), so that the suppression list can say why an address is not sent to.

Existing entries become `admin`; spam complaints recorded before this revision cannot be told
apart from them. `events.provider`: the SMTP relay (host:port) that sent the message.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("events", sa.Column("provider", sa.String(262), nullable=True))
    op.add_column(
        "denylist",
        sa.Column("source", sa.String(16), nullable=False, server_default="admin"),
    )


def downgrade() -> None:
    with op.batch_alter_table("denylist") as batch:
        batch.drop_column("source")
    with op.batch_alter_table("events") as batch:
        batch.drop_column("provider")
