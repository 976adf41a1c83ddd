"""Migration 0017 gives the source `spam` to denylist entries that spam complaints put there
before revision 0012 (which called every existing entry `admin`), as far as the stored rows
tell them apart, and leaves admins' entries alone."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import command
from sqlalchemy.engine import Connection

from txmsg.core.timeutil import utcnow
from txmsg.store.db import Database
from txmsg.store.migrations import alembic_config

DENY = sa.table(
    "denylist",
    sa.column("channel"),
    sa.column("address"),
    sa.column("reason"),
    sa.column("created_at"),
    sa.column("source"),
)
LOG = sa.table(
    "delivery_log",
    sa.column("pkey"),
    sa.column("event_id"),
    sa.column("kind"),
    sa.column("at"),
    sa.column("detail", sa.JSON()),
    sa.column("once_key"),
)
EVENTS = sa.table(
    "events",
    *(sa.column(c) for c in ("pkey", "event_id", "priority", "status", "email", "profile_id")),
    *(sa.column(c) for c in ("event_date", "expires_at", "due_at", "attempts", "updated_at")),
    sa.column("ctx", sa.JSON()),
)
CHANNELS = sa.table(
    "channel_configs",
    *(sa.column(c) for c in ("name", "channel", "message_export", "revision")),
    *(sa.column(c) for c in ("created_at", "updated_at")),
    sa.column("settings", sa.JSON()),
    sa.column("secrets", sa.JSON()),
)
CONFIGS = sa.table(
    "event_configs",
    *(sa.column(c) for c in ("event_id", "label", "channel", "target", "template", "state")),
    sa.column("channel_config"),
    *(sa.column(c) for c in ("priority", "revision", "created_at", "updated_at")),
    sa.column("fields", sa.JSON()),
)
PROFILES = sa.table(
    "profiles",
    *(sa.column(c) for c in ("profile_id", "email", "email_opt_out", "sms_opt_out")),
    *(sa.column(c) for c in ("created_at", "updated_at")),
    sa.column("attributes", sa.JSON()),
)

# (address, reason, what the entry is): the source it must have after the migration.
ENTRIES = [
    ("arf@example.org", "spam complaint", "spam"),  # an ARF complaint
    ("posted@example.org", "clicked 'this is spam'", "spam"),  # posted with a reason, logged
    ("profile@example.org", "reported by the ESP", "spam"),  # a profile-based message's
    ("admin@example.org", "asked to be removed", "admin"),  # an admin's
    ("other@example.org", "clicked 'this is spam'", "admin"),  # a logged reason, another address
]


def _seed(conn: Connection) -> None:
    now = utcnow().replace(tzinfo=None)
    conn.execute(
        sa.insert(CHANNELS).values(
            name="mail", channel="email", settings={}, secrets={}, message_export=False,
            revision=1, created_at=now, updated_at=now,
        )
    )  # fmt: skip
    for event_id, target in (("EVTevent", "event"), ("EVTprofile", "profile")):
        conn.execute(
            sa.insert(CONFIGS).values(
                event_id=event_id, label=event_id, channel="email", target=target,
                channel_config="mail", template="t", state="published", priority="transactional",
                revision=1,
                created_at=now, updated_at=now, fields=[],
            )
        )  # fmt: skip
    conn.execute(
        sa.insert(PROFILES).values(
            profile_id="p1", email="profile@example.org", attributes={}, email_opt_out=False,
            sms_opt_out=False, created_at=now, updated_at=now,
        )
    )  # fmt: skip
    for pkey, event_id, email, profile_id in (
        ("P1", "EVTevent", "posted@example.org", None),
        ("P2", "EVTprofile", None, "p1"),
    ):
        conn.execute(
            sa.insert(EVENTS).values(
                pkey=pkey, event_id=event_id, priority=0, status="processed", email=email,
                profile_id=profile_id, event_date=now, expires_at=now, due_at=now, attempts=1,
                updated_at=now, ctx={},
            )
        )  # fmt: skip
    conn.execute(
        sa.insert(LOG),
        [
            {"pkey": "P1", "event_id": "EVTevent", "kind": "spam", "at": now, "once_key": "spam",
             "detail": {"reason": "clicked 'this is spam'", "source": "api"}},
            {"pkey": "P2", "event_id": "EVTprofile", "kind": "spam", "at": now, "once_key": "spam",
             "detail": {"reason": "reported by the ESP", "source": "api"}},
        ],
    )  # fmt: skip
    conn.execute(
        sa.insert(DENY),
        [
            {"channel": "email", "address": a, "reason": r, "created_at": now, "source": "admin"}
            for a, r, _ in ENTRIES
        ],
    )


def _migrate(conn: Connection) -> dict[str, Any]:
    command.downgrade(alembic_config(conn), "0015")
    _seed(conn)
    command.upgrade(alembic_config(conn), "head")
    rows = conn.execute(sa.text("SELECT address, source FROM denylist"))
    return {r.address: r.source for r in rows}


async def test_pre_0012_spam_complaints_get_their_source(db: Database) -> None:
    assert await db.write(_migrate) == {a: source for a, _, source in ENTRIES}
