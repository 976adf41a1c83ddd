"""The database's clock, as one process reads it: leases are compared against it.

Every process sets and checks lease ends (claims, renewals, the expiry sweep); a process whose
own clock runs ahead would take a live lease for an expired one and send its event twice. So
lease times are the database's: each housekeeping sweep reads the database's time in its own
transaction (and compares lease ends against exactly that; a process without the scheduler
lock reads it at the same interval), and keeps the offset from this process's clock, which
`now()` adds to the local time for the claims and renewals in between (no extra statement on
the claim/write cycle).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from txmsg.core.timeutil import utcnow

_NOW = {
    # clock_timestamp(): the time of the read, not of the transaction's start (now()).
    "postgresql": sa.text("SELECT clock_timestamp()"),
    "sqlite": sa.text("SELECT strftime('%Y-%m-%d %H:%M:%f', 'now')"),
}


def database_now(conn: Connection) -> datetime:
    """The database server's current time (UTC, aware)."""
    value = conn.execute(_NOW[conn.dialect.name]).scalar_one()
    if isinstance(value, str):  # SQLite: text, UTC, milliseconds
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# Offsets within this are the measurement's own error (a loaded machine's round trip) or what
# NTP keeps clocks within: taken as none, so the processes of one machine agree exactly on
# "now" (an event an API process stamps due is due for its worker at once).
IN_STEP = timedelta(milliseconds=250)

# A read of the database's time can be off by half its round trip: one slower than twice
# IN_STEP could take clocks in step for clocks apart, and is not used.
SLOW_READ = 2 * IN_STEP


class DatabaseClock:
    """The database's time, estimated as this process's time plus the last measured offset.

    `local` is this process's clock (a test gives a skewed one)."""

    def __init__(self, local: Callable[[], datetime] = utcnow) -> None:
        self._local = local
        self._offset = timedelta(0)

    @property
    def offset(self) -> timedelta:
        """The database's time minus this process's, as last measured (0 when in step)."""
        return self._offset

    def now(self) -> datetime:
        return self._local() + self._offset

    def sync_in(self, conn: Connection) -> datetime:
        """Read the database's time (one statement), keep the offset; return that time. A
        slow read (a loaded machine) leaves the last offset as it was."""
        before = self._local()
        server = database_now(conn)
        after = self._local()
        if after - before > SLOW_READ:
            return server
        offset = server - (before + (after - before) / 2)
        self._offset = offset if abs(offset) > IN_STEP else timedelta(0)
        return server
