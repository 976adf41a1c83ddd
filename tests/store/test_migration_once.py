"""Migration 0011 keys the delivery log's entries recorded once and deletes the duplicates
earlier code recorded (the oldest stays) before it creates the unique index."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import command
from sqlalchemy.engine import Connection

from txmsg.core.timeutil import utcnow
from txmsg.store.db import Database
from txmsg.store.migrations import alembic_config

LOG = sa.table(
    "delivery_log",
    sa.column("id"),
    sa.column("pkey"),
    sa.column("event_id"),
    sa.column("kind"),
    sa.column("at"),
    sa.column("detail", sa.JSON()),
)

RECEIPT = {"provider": "twilio", "MessageSid": "SM" + "a" * 32, "MessageStatus": "delivered"}
REPORTED = {"bounce": "soft", "reason": "mailbox full", "source": "dsn"}
REFUSED = {"bounce": "soft", "reason": "452 try later"}  # a send's own refusal: not keyed
PERSON = {"ip": "192.0.2.1"}
SCANNER = {"ip": "192.0.2.9", "machine": True}

ROWS = [
    ("P1", "delivered", RECEIPT),
    ("P1", "delivered", RECEIPT),
    ("P1", "bounced", REPORTED),
    ("P1", "bounced", REPORTED),
    ("P1", "spam", {"reason": "spam complaint", "source": "arf"}),
    ("P1", "spam", {"reason": "spam complaint", "source": "arf"}),
    ("P2", "bounced", REFUSED),
    ("P2", "bounced", REFUSED),
    ("P1", "opened", SCANNER),
    ("P1", "opened", PERSON),
    ("P1", "opened", PERSON),
]


def _migrate_with_duplicates(conn: Connection) -> list[Any]:
    command.downgrade(alembic_config(conn), "0009")
    at = utcnow().replace(tzinfo=None)
    conn.execute(
        sa.insert(LOG),
        [{"pkey": p, "event_id": "EVTq", "kind": k, "at": at, "detail": d} for p, k, d in ROWS],
    )
    command.upgrade(alembic_config(conn), "head")
    rows = conn.execute(sa.text("SELECT pkey, kind, once_key FROM delivery_log ORDER BY id"))
    return [tuple(r) for r in rows]


async def test_the_migration_keys_and_deduplicates_existing_entries(db: Database) -> None:
    assert await db.write(_migrate_with_duplicates) == [
        ("P1", "delivered", "SM" + "a" * 32),
        ("P1", "bounced", "soft"),
        ("P1", "spam", "spam"),
        ("P2", "bounced", None),
        ("P2", "bounced", None),
        ("P1", "opened", None),  # a scanner's: never a unique open
        ("P1", "opened", "first"),
        ("P1", "opened", None),
    ]
