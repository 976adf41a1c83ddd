"""Console sessions signed out before their end (the sessions themselves live in their
signed cookies: api/sessions.py)."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from txmsg.store.dialect_insert import insert_into
from txmsg.store.tables import console_sign_outs


def sign_out_in(conn: Connection, session_id: str, until: datetime, now: datetime) -> None:
    """Refuse the session from now until its end; forget sessions already over."""
    conn.execute(sa.delete(console_sign_outs).where(console_sign_outs.c.until < now))
    conn.execute(
        insert_into(conn.dialect.name, console_sign_outs)
        .values(session_id=session_id, until=until)
        .on_conflict_do_nothing(index_elements=["session_id"])
    )


def is_signed_out(conn: Connection, session_id: str) -> bool:
    found = conn.execute(
        sa.select(console_sign_outs.c.session_id).where(
            console_sign_outs.c.session_id == session_id
        )
    ).first()
    return found is not None
