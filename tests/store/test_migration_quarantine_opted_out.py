"""Migration 0029 marks the numbers held for Twilio's 21610 (a STOP) before it as opt-outs, so
the suppression list reads them as `sms_stop`, not `hard_bounce`; other holds stay bounces."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import command
from sqlalchemy.engine import Connection

from txmsg.core.suppression import Filters
from txmsg.core.timeutil import utcnow
from txmsg.store import suppressions
from txmsg.store.db import Database
from txmsg.store.migrations import alembic_config

QUARANTINE = sa.table(
    "quarantine",
    *(sa.column(c) for c in ("channel", "address", "soft_bounces", "reason")),
    *(sa.column(c) for c in ("quarantined_at", "updated_at")),
)
STOP = "Twilio error 21610 (HTTP 400): Attempt to send to unsubscribed recipient"


def _migrate(conn: Connection) -> dict[str, tuple[bool, str | None]]:
    command.downgrade(alembic_config(conn), "0028")
    now = utcnow().replace(tzinfo=None)
    conn.execute(
        sa.insert(QUARANTINE),
        [
            {"channel": ch, "address": a, "soft_bounces": soft, "reason": reason,
             "quarantined_at": now if held else None, "updated_at": now}
            for ch, a, soft, reason, held in (
                ("sms", "+14155552671", 0, STOP, True),
                ("sms", "+14155552672", 0, "Twilio error 30003 (HTTP 400): Unreachable", True),
                ("email", "ada@example.org", 0, "550 5.1.1 no such user", True),
                ("email", "bo@example.org", 1, "452 4.2.2 mailbox full", False),
            )
        ],
    )  # fmt: skip
    command.upgrade(alembic_config(conn), "head")
    flags = conn.execute(sa.text("SELECT address, opted_out FROM quarantine"))
    listed = {s.address: s.reason.value for s in suppressions.export(conn, Filters(), 100)}
    return {r.address: (bool(r.opted_out), listed.get(r.address)) for r in flags}


async def test_holds_of_a_stop_become_opt_outs(db: Database) -> None:
    assert await db.write(_migrate) == {
        "+14155552671": (True, "sms_stop"),
        "+14155552672": (False, "hard_bounce"),
        "ada@example.org": (False, "hard_bounce"),
        "bo@example.org": (False, None),
    }
