"""Migration 0027 names who recorded each stored opt-out: those recorded before it are taken
as the person's (the safe reading: a profile write's `false` then needs `resubscribe=true`)."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import command
from sqlalchemy.engine import Connection

from txmsg.core.timeutil import utcnow
from txmsg.store.db import Database
from txmsg.store.migrations import alembic_config

PROFILES = sa.table(
    "profiles",
    *(sa.column(c) for c in ("profile_id", "email", "email_opt_out", "sms_opt_out")),
    *(sa.column(c) for c in ("created_at", "updated_at")),
    sa.column("attributes", sa.JSON()),
)


def _migrate(conn: Connection) -> dict[str, tuple[str | None, str | None]]:
    command.downgrade(alembic_config(conn), "0026")
    now = utcnow().replace(tzinfo=None)
    conn.execute(
        sa.insert(PROFILES),
        [
            {"profile_id": pid, "email": None, "email_opt_out": e, "sms_opt_out": s,
             "attributes": {}, "created_at": now, "updated_at": now}
            for pid, e, s in (("none", False, False), ("mail", True, False), ("sms", False, True))
        ],
    )  # fmt: skip
    command.upgrade(alembic_config(conn), "head")
    rows = conn.execute(
        sa.text("SELECT profile_id, email_opt_out_by, sms_opt_out_by FROM profiles")
    )
    return {r.profile_id: (r.email_opt_out_by, r.sms_opt_out_by) for r in rows}


async def test_stored_opt_outs_count_as_the_persons(db: Database) -> None:
    assert await db.write(_migrate) == {
        "none": (None, None),
        "mail": ("person", None),
        "sms": (None, "person"),
    }
