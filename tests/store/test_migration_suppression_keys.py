"""Migration 0019 lists email addresses on the denylist and in quarantine lower-cased, rows
that become one keeping the strongest of their facts, and leaves phone numbers alone."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from alembic import command
from sqlalchemy.engine import Connection

from txmsg.core.timeutil import utcnow
from txmsg.store.db import Database
from txmsg.store.migrations import alembic_config
from txmsg.store.tables import denylist, quarantine

# The quarantine's columns at revision 0018 (later revisions add more: `opted_out`, 0029).
QUARANTINE_0018 = sa.table(
    "quarantine",
    *(sa.column(c) for c in ("channel", "address", "soft_bounces", "reason")),
    *(sa.column(c) for c in ("quarantined_at", "updated_at")),
)


def _seed(conn: Connection) -> Any:
    now = utcnow()
    earlier = now - timedelta(hours=1)
    conn.execute(
        sa.insert(denylist),
        [
            {"channel": "email", "address": "Ada@example.org", "reason": "asked by phone",
             "created_at": now, "source": "admin"},
            {"channel": "email", "address": "ada@example.org", "reason": "spam complaint",
             "created_at": earlier, "source": "spam"},
            {"channel": "email", "address": "BOB@example.org", "reason": None,
             "created_at": now, "source": "import"},
            {"channel": "sms", "address": "+33612345678", "reason": None,
             "created_at": now, "source": "admin"},
        ],
    )  # fmt: skip
    conn.execute(
        sa.insert(QUARANTINE_0018),
        [
            {"channel": "email", "address": "Cy@example.org", "soft_bounces": 1,
             "quarantined_at": None, "reason": "452 mailbox full", "updated_at": now},
            {"channel": "email", "address": "CY@example.org", "soft_bounces": 0,
             "quarantined_at": earlier, "reason": "550 no such user", "updated_at": earlier},
            {"channel": "email", "address": "dee@example.org", "soft_bounces": 2,
             "quarantined_at": None, "reason": "452 mailbox full", "updated_at": now},
        ],
    )  # fmt: skip
    return earlier


def _migrate(conn: Connection) -> tuple[Any, list[Any], list[Any]]:
    command.downgrade(alembic_config(conn), "0018")
    earlier = _seed(conn)
    command.upgrade(alembic_config(conn), "head")
    order = (denylist.c.channel, denylist.c.address)
    denied = list(conn.execute(sa.select(denylist).order_by(*order)))
    held = list(conn.execute(sa.select(quarantine).order_by(quarantine.c.address)))
    return earlier, denied, held


async def test_addresses_are_listed_lower_cased_and_merged(db: Database) -> None:
    earlier, denied, held = await db.write(_migrate)
    assert [(r.channel, r.address, r.source, r.reason) for r in denied] == [
        ("email", "ada@example.org", "admin", "asked by phone"),  # the admin's entry wins
        ("email", "bob@example.org", "import", None),
        ("sms", "+33612345678", "admin", None),
    ]
    assert denied[0].created_at == earlier  # listed since the first of the two
    assert [(r.address, r.soft_bounces, r.reason) for r in held] == [
        ("cy@example.org", 1, "550 no such user"),  # held by the hard bounce
        ("dee@example.org", 2, "452 mailbox full"),
    ]
    assert held[0].quarantined_at == earlier
    assert held[1].quarantined_at is None
