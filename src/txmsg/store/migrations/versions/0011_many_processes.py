"""Many processes on one database: entries recorded once, and SQLite's scheduler lease.

- `delivery_log.once_key` and the unique index `(pkey, kind, once_key)`: SMS receipts (their
  MessageSid), bounces and complaints reported after acceptance (their class), and a person's
  first open or click ("first") are recorded once even when duplicates arrive at once in two
  processes. Existing rows get their key, and duplicates among them are deleted (the oldest
  stays) before the index is created.
- `scheduler_leases`: the one process running scheduled jobs on SQLite.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def _field(dialect: str, name: str) -> str:
    if dialect == "sqlite":
        return f"json_extract(detail, '$.{name}')"
    return f"(detail ->> '{name}')"


def _by_people(dialect: str) -> str:
    if dialect == "sqlite":
        return "coalesce(json_extract(detail, '$.machine'), 0) = 0"
    return "coalesce((detail ->> 'machine')::boolean, false) = false"


def _backfill(dialect: str) -> None:
    sid, source, bounce = (_field(dialect, n) for n in ("MessageSid", "source", "bounce"))
    op.execute(f"UPDATE delivery_log SET once_key = substr({sid}, 1, 64) WHERE {sid} IS NOT NULL")
    op.execute(
        f"UPDATE delivery_log SET once_key = {bounce} "
        f"WHERE kind = 'bounced' AND {source} IS NOT NULL AND {bounce} IS NOT NULL"
    )
    op.execute(
        f"UPDATE delivery_log SET once_key = 'spam' WHERE kind = 'spam' AND {source} IS NOT NULL"
    )
    op.execute(
        "UPDATE delivery_log SET once_key = 'first' WHERE id IN ("
        "SELECT min(id) FROM delivery_log WHERE kind IN ('opened', 'clicked') "
        f"AND {_by_people(dialect)} GROUP BY pkey, kind)"
    )
    op.execute(
        "DELETE FROM delivery_log WHERE once_key IS NOT NULL AND id NOT IN ("
        "SELECT min(id) FROM delivery_log WHERE once_key IS NOT NULL "
        "GROUP BY pkey, kind, once_key)"
    )


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    op.add_column("delivery_log", sa.Column("once_key", sa.String(64), nullable=True))
    _backfill(dialect)
    op.create_index(
        "ux_delivery_log_once", "delivery_log", ["pkey", "kind", "once_key"], unique=True
    )
    op.create_table(
        "scheduler_leases",
        sa.Column("name", sa.String(32), primary_key=True),
        sa.Column("holder", sa.String(80), nullable=False),
        sa.Column("expires", sa.Float(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("scheduler_leases")
    op.drop_index("ux_delivery_log_once", table_name="delivery_log")
    with op.batch_alter_table("delivery_log") as batch:
        batch.drop_column("once_key")
