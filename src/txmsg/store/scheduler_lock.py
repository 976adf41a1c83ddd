"""The scheduler's lock: scheduled jobs (housekeeping, export flows, purges, the interaction
lifecycle, checkpoints) run on exactly one process at a time, whatever the number of workers.

- PostgreSQL: a session-level advisory lock on a connection of its own. The holder keeps it
  as long as its session lives, and touches the session at every try. A holder that dies
  (SIGKILL) loses its session and with it the lock; one that stops answering (a lost host, a
  frozen process: its socket stays open) loses it when the server ends its session, idle for
  `ttl` (`idle_session_timeout`). The next process to try takes it.
- SQLite: a lease row (`scheduler_leases`) renewed by its holder, compared against the
  database's clock. A holder that stops gives it up; one that dies or freezes holds it until
  it expires.

Either way a holder frozen mid-job and resumed after another took over may finish that job
beside the new holder's: the jobs are written to tolerate it (each checks the database's state
in its own transaction).
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
from typing import Protocol

import sqlalchemy as sa
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

from txmsg.store.db import Database
from txmsg.store.tables import scheduler_leases

log = logging.getLogger(__name__)

# pg_try_advisory_lock's key: "txmsg" scheduler, one per database.
ADVISORY_KEY = 0x74786D73_63686564
LEASE_NAME = "scheduler"

_TRY_LOCK = sa.text("SELECT pg_try_advisory_lock(:key)")
_UNLOCK = sa.text("SELECT pg_advisory_unlock(:key)")
_ALIVE = sa.text("SELECT 1")
# PostgreSQL 14 and later end a session idle for this long (milliseconds), and with it its lock.
_IDLE_LIMIT = sa.text("SELECT set_config('idle_session_timeout', :ms, false)")
IDLE_LIMIT_SINCE = (14,)


class SchedulerLock(Protocol):
    async def hold(self) -> bool:
        """Take or keep the lock; whether this process holds it now. Raises when the
        database cannot answer (then it does not hold it)."""
        ...

    async def release(self) -> None:
        """Give the lock up (at stop): another process takes it at its next try."""
        ...


class AdvisoryLock:
    """PostgreSQL: a session advisory lock held on a dedicated connection, whose session the
    server ends once idle for `ttl` seconds."""

    _warned = False  # a process is told once that its server cannot end a frozen holder's session

    def __init__(self, db: Database, ttl: float, key: int = ADVISORY_KEY) -> None:
        self._db = db
        self._ttl = ttl
        self._key = key
        self._conn: AsyncConnection | None = None
        self._held = False
        self._mutex = asyncio.Lock()  # one statement at a time on the connection

    async def hold(self) -> bool:
        async with self._mutex:
            held = self._held
            try:
                if self._conn is None:
                    self._conn = await self._connect()
                if self._held:
                    await self._conn.execute(_ALIVE)  # the session lives: the lock is ours
                else:
                    taken = await self._conn.execute(_TRY_LOCK, {"key": self._key})
                    self._held = bool(taken.scalar_one())
            except DBAPIError as exc:
                await self._drop()
                if not (held and exc.connection_invalidated):
                    raise
                # Frozen or cut off longer than `ttl`: the server ended the session.
                log.warning("the scheduler lock's session had ended: another process may hold it")
                return False
            except BaseException:
                await self._drop()
                raise
            return self._held

    async def _connect(self) -> AsyncConnection:
        conn = await self._db.dedicated()
        version = conn.dialect.server_version_info or ()
        if version >= IDLE_LIMIT_SINCE:
            await conn.execute(_IDLE_LIMIT, {"ms": str(max(1, round(self._ttl * 1000)))})
        elif not AdvisoryLock._warned:
            AdvisoryLock._warned = True
            log.warning(
                "PostgreSQL before 14 has no idle_session_timeout: a frozen or cut-off worker"
                " keeps the scheduler lock until its server notices the connection is gone"
            )
        return conn

    async def release(self) -> None:
        async with self._mutex:
            try:
                if self._conn is not None and self._held:
                    await self._conn.execute(_UNLOCK, {"key": self._key})
            except DBAPIError as exc:
                if not exc.connection_invalidated:
                    raise
                log.info("the scheduler lock's session had ended, and the lock with it")
            finally:
                await self._drop()

    async def _drop(self) -> None:
        self._held = False
        conn, self._conn = self._conn, None
        if conn is not None:
            await conn.invalidate()  # its session may be gone: do not return it to the pool
            await conn.close()


# The database's clock on SQLite, in Unix seconds (one value within a statement).
_SQLITE_EPOCH: sa.ColumnElement[float] = sa.literal_column(
    "((julianday('now') - 2440587.5) * 86400.0)", sa.Float()
)


def take_lease_in(conn: Connection, name: str, holder: str, ttl: float) -> bool:
    """Take the lease `name` for `holder` for `ttl` seconds if it is free, expired or already
    the holder's (a renewal); whether the holder has it now. One statement."""
    insert = sqlite.insert(scheduler_leases).values(
        name=name, holder=holder, expires=_SQLITE_EPOCH + ttl
    )
    upsert = insert.on_conflict_do_update(
        index_elements=["name"],
        set_={"holder": insert.excluded.holder, "expires": insert.excluded.expires},
        where=sa.or_(
            scheduler_leases.c.holder == holder, scheduler_leases.c.expires < _SQLITE_EPOCH
        ),
    ).returning(scheduler_leases.c.holder)
    return conn.execute(upsert).first() is not None


def give_up_lease_in(conn: Connection, name: str, holder: str) -> None:
    conn.execute(
        sa.delete(scheduler_leases).where(
            scheduler_leases.c.name == name, scheduler_leases.c.holder == holder
        )
    )


class LeaseRowLock:
    """SQLite: a lease row, renewed by each `hold` for `ttl` seconds of the database's clock."""

    def __init__(self, db: Database, ttl: float, name: str = LEASE_NAME) -> None:
        self._db = db
        self._ttl = ttl
        self._name = name
        self._holder = f"{socket.gethostname()[:32]}:{os.getpid()}:{secrets.token_hex(4)}"
        self._held = False

    async def hold(self) -> bool:
        self._held = False
        self._held = await self._db.write(take_lease_in, self._name, self._holder, self._ttl)
        return self._held

    async def release(self) -> None:
        if self._held:
            self._held = False
            await self._db.write(give_up_lease_in, self._name, self._holder)


def scheduler_lock_for(db: Database, ttl: float) -> SchedulerLock:
    """The lock for `db`'s engine; `ttl`: how long a holder that stopped answering keeps it."""
    if db.is_sqlite:
        return LeaseRowLock(db, ttl)
    return AdvisoryLock(db, ttl)
