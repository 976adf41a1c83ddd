"""Wake-ups across processes: another process committed events, so look for due ones now.

A worker without its own API learns of new triggers only from the database. Rather than poll
the queue, it watches for commits, the cheapest way each engine offers:

- SQLite (processes on one machine sharing the file): `PRAGMA data_version` on a connection of
  its own, every few milliseconds. The value changes when another connection commits; one
  check costs about 4 us here (an in-memory read of the WAL index), so it runs on the event
  loop itself rather than paying a thread hand-off (about 130 us) each time. That connection
  sees this process's own commits too, which need no wake (the writer hands over what it
  leases; a wake would cost a claim): the writer's connection tells them apart
  (store/foreign_commits.py): when a check saw that both may have committed, the writer's
  next cycle settles it, or, the writer idle, one reading asked of it (a hand-off).
- PostgreSQL: `LISTEN txmsg_events` on one asyncpg connection; the write cycle that leaves due
  events queued for others issues one `NOTIFY` in its transaction (`announce_in`), delivered on
  commit. The connection is reopened when lost.

A wake-up only says "look"; the claim decides. The poll interval stays as the safety net.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Protocol

import asyncpg
from sqlalchemy.engine import Connection, make_url

from txmsg.store.db import pg_session_settings
from txmsg.store.foreign_commits import ForeignCommits
from txmsg.store.outage import OutageLog

if TYPE_CHECKING:
    from txmsg.store.db import Database

log = logging.getLogger("txmsg.wakeups")

CHANNEL = "txmsg_events"
SQLITE_CHECK_INTERVAL = 0.005  # seconds: a wake-up within 5 ms, for well under 1% of a core
RECONNECT_DELAY = 1.0  # seconds between attempts to reopen a lost LISTEN connection


class Wakeups(Protocol):
    def start(self) -> None: ...

    async def ready(self) -> None:
        """Returns once commits from now on are seen (the first check made, or listening)."""
        ...

    async def stop(self) -> None: ...


def announce_in(conn: Connection) -> None:
    """Tell listening workers that due events wait (PostgreSQL; SQLite's watchers see the
    commit itself). Sent when the caller's transaction commits, not before."""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(f"SELECT pg_notify('{CHANNEL}', '')")


def wakeups_for(db: Database, on_commit: Callable[[], None]) -> Wakeups:
    """The watcher of other processes' commits to `db`."""
    parsed = make_url(db.url)
    if db.is_sqlite:
        return DataVersionWatcher(
            parsed.database or ":memory:", db.foreign_commits, db.read_foreign_commits, on_commit
        )
    dsn = parsed.set(drivername="postgresql").render_as_string(hide_password=False)
    return NotifyListener(dsn, on_commit, pg_session_settings())


class _Watcher(ABC):
    """A task watching for other processes' commits; `ready` once it would see the next one."""

    name = "txmsg-watch"

    def __init__(self, on_commit: Callable[[], None]) -> None:
        self._on_commit = on_commit
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=self.name)

    async def ready(self) -> None:
        await self._ready.wait()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            except Exception:
                # Said here, not raised: the process's stop goes on (sends, the writer).
                log.exception("watching for other processes' commits had failed")
            self._task = None

    @abstractmethod
    async def _run(self) -> None: ...


class DataVersionWatcher(_Watcher):
    """SQLite: `on_commit()` whenever another process has committed since the last check."""

    name = "txmsg-data-version"

    def __init__(
        self,
        path: str,
        foreign: ForeignCommits,
        read_foreign: Callable[[], Awaitable[None]],
        on_commit: Callable[[], None],
        interval: float = SQLITE_CHECK_INTERVAL,
    ) -> None:
        """`foreign`: what this process's writer saw of other connections' commits;
        `read_foreign()` makes the writer look now."""
        super().__init__(on_commit)
        self._path = path
        self._foreign = foreign
        self._read_foreign = read_foreign
        self._interval = interval

    async def _run(self) -> None:
        # Autocommit: a read transaction left open would pin the value (and the WAL).
        conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        foreign = self._foreign
        foreign.watched = True
        try:
            # The writer's first reading, then its counters, then the version: a commit after
            # the version's reading comes after the counters and after a reading to compare.
            await self._read_foreign()
            base = (foreign.committed, foreign.seen)
            last = _data_version(conn)
            self._ready.set()
            # A change that may have been this process's own commit or another's: the
            # writer's readings then, and its count of another's before that check.
            doubt: tuple[int, int] | None = None
            outage = OutageLog(log, "checking for other processes' commits")
            while True:
                await asyncio.sleep(self._interval)
                counters = (foreign.committed, foreign.seen)
                try:
                    version = _data_version(conn)
                except sqlite3.Error as exc:
                    if not outage.failed(exc):
                        log.exception("checking for commits failed; the poll interval remains")
                    continue  # compared, once read, with the counters before the last reading
                outage.ok()
                if doubt is not None:
                    if await self._another_since(*doubt):
                        self._on_commit()
                    doubt = None
                if version != last:
                    last = version
                    committed, seen = base
                    if foreign.committing == committed or foreign.seen != seen:
                        self._on_commit()  # none of this process's own; or another's seen
                    else:
                        doubt = (foreign.begun, seen)  # the next reading settles it
                base = counters
        finally:
            foreign.watched = False
            conn.close()

    async def _another_since(self, begun: int, seen: int) -> bool:
        """Whether the writer saw another's commit: in a reading made since it had made
        `begun` (a cycle begun since the check; else, the writer idle, one asked for now)."""
        if self._foreign.begun == begun:
            try:
                await self._read_foreign()
            except Exception:
                log.exception("reading other processes' commits failed; looking anyway")
                return True
        return self._foreign.seen != seen


def _data_version(conn: sqlite3.Connection) -> int:
    row = conn.execute("PRAGMA data_version").fetchone()
    return int(row[0])


class NotifyListener(_Watcher):
    """PostgreSQL: `on_commit()` on each `NOTIFY txmsg_events`, on one connection kept open."""

    name = "txmsg-listen"

    def __init__(
        self,
        dsn: str,
        on_commit: Callable[[], None],
        server_settings: dict[str, str] | None = None,
    ) -> None:
        super().__init__(on_commit)
        self._dsn = dsn
        self._outage = OutageLog(log, "listening for new events")
        self._server_settings = server_settings

    @property
    def listening(self) -> asyncio.Event:
        """Set while the connection listens (tests wait for it)."""
        return self._ready

    async def _run(self) -> None:
        again = False
        while True:
            try:
                await self._listen_until_lost(again)
            except Exception as exc:  # any (asyncpg's InterfaceError too): this loop must not end
                if not self._outage.failed(exc):
                    log.exception("listening for new events failed; reconnecting")
            self._ready.clear()
            # Events may have been committed while nobody listened: look now, and again once
            # listening (what is committed until then sends no notification we would get).
            self._on_commit()
            again = True
            await asyncio.sleep(RECONNECT_DELAY)

    async def _listen_until_lost(self, again: bool) -> None:
        lost = asyncio.Event()
        conn = await asyncpg.connect(self._dsn, server_settings=self._server_settings)
        try:
            conn.add_termination_listener(lambda _conn: lost.set())
            await conn.add_listener(CHANNEL, self._notified)
            self._ready.set()
            self._outage.ok()
            if again:
                self._on_commit()
            await lost.wait()
        finally:
            if not conn.is_closed():
                await conn.close()

    def _notified(self, *_args: object) -> None:
        self._on_commit()
