"""Email addresses on the denylist and in quarantine are listed lower-cased.

Until this revision an address was listed as written, its domain lower-cased: a hard bounce of
`Ada@example.org` did not hold `ada@example.org`, nor a denylist entry made for one the other.
Mailbox providers read the local part without regard to case, and the engine now lists by
`core.suppression.suppression_key`. Rows that become one keep the strongest of their facts: a
denylist entry the earliest, an admin's source before an import's or a complaint's; quarantine
its earliest hold and the most soft bounces. Downgrading leaves the rows as they are.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-07
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None

denylist = sa.table(
    "denylist",
    sa.column("channel", sa.String()),
    sa.column("address", sa.String()),
    sa.column("reason", sa.String()),
    sa.column("created_at", sa.DateTime(timezone=True)),
    sa.column("source", sa.String()),
)
quarantine = sa.table(
    "quarantine",
    sa.column("channel", sa.String()),
    sa.column("address", sa.String()),
    sa.column("soft_bounces", sa.Integer()),
    sa.column("quarantined_at", sa.DateTime(timezone=True)),
    sa.column("reason", sa.String()),
    sa.column("updated_at", sa.DateTime(timezone=True)),
)


def _groups(conn: sa.Connection, table: Any) -> dict[str, list[Any]]:
    """The email rows of `table` by lower-cased address, for the addresses with capitals."""
    mixed = sa.select(sa.func.lower(table.c.address)).where(
        table.c.channel == "email", table.c.address != sa.func.lower(table.c.address)
    )
    rows = conn.execute(
        sa.select(table).where(
            table.c.channel == "email", sa.func.lower(table.c.address).in_(mixed)
        )
    )
    groups: dict[str, list[Any]] = {}
    for row in rows:
        groups.setdefault(row.address.lower(), []).append(row)
    return groups


def _replace(
    conn: sa.Connection, table: Any, key: str, rows: list[Any], kept: dict[str, Any]
) -> None:
    conn.execute(
        sa.delete(table).where(
            table.c.channel == "email", table.c.address.in_([r.address for r in rows])
        )
    )
    conn.execute(sa.insert(table).values(channel="email", address=key, **kept))


def _denylist_entry(rows: list[Any]) -> dict[str, Any]:
    admin = [r for r in rows if r.source == "admin"]
    first = min(admin or rows, key=lambda r: r.created_at)
    return {
        "reason": first.reason,
        "source": first.source,
        "created_at": min(r.created_at for r in rows),
    }


def _quarantine_entry(rows: list[Any]) -> dict[str, Any]:
    held = [r for r in rows if r.quarantined_at is not None]
    first = (
        min(held, key=lambda r: r.quarantined_at) if held else max(rows, key=lambda r: r.updated_at)
    )
    return {
        "soft_bounces": max(r.soft_bounces for r in rows),
        "quarantined_at": first.quarantined_at,
        "reason": first.reason,
        "updated_at": max(r.updated_at for r in rows),
    }


def upgrade() -> None:
    conn = op.get_bind()
    for key, rows in sorted(_groups(conn, denylist).items()):
        _replace(conn, denylist, key, rows, _denylist_entry(rows))
    for key, rows in sorted(_groups(conn, quarantine).items()):
        _replace(conn, quarantine, key, rows, _quarantine_entry(rows))


def downgrade() -> None:
    pass  # a lower-cased address names the same mailbox before this revision as after it
