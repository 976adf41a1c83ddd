"""Database engines: SQLite (embedded default) and PostgreSQL (scale-out), one code path.

Store functions are plain synchronous SQLAlchemy Core functions taking a `Connection`; this
class runs them without blocking the event loop:

- PostgreSQL: on the asyncpg driver, through `AsyncConnection.run_sync` (no threads).
- SQLite: on the standard library driver, in worker threads. Writes run on one dedicated
  thread holding one connection (SQLite has one writer at a time: writers queue there instead
  of spinning on SQLITE_BUSY; another process's writer is waited for in
  store/write_lock.py), reads on a small pool. A whole transaction is one hand-off to
  the thread. (SQLAlchemy's async adapter for aiosqlite costs several thread hand-offs per
  statement: about 500 us for `SELECT 1` here, against about 130 us for one hand-off.)
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

import asyncpg
import orjson
from sqlalchemy import create_engine, event
from sqlalchemy.engine import Connection, Engine, ExceptionContext, make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from txmsg.core.timeutil import utcnow
from txmsg.store.clock import DatabaseClock
from txmsg.store.foreign_commits import ForeignCommits
from txmsg.store.migrations import upgrade_to_head
from txmsg.store.sealing import Keyring, install
from txmsg.store.write_lock import begin_immediate, drop_busy_handler

SYNCHRONOUS_LEVELS = ("OFF", "NORMAL", "FULL", "EXTRA")
SQLITE_READERS = 4
# PostgreSQL: the write funnel's connections (its cycles overlap on at most 4, and an express
# one beside them: engine/writer.py), and as many more at busy times; a trigger's own reads
# (its key, its event, its rate tokens) are cached, and rare.
WRITE_CYCLE_CONNECTIONS = 5
WAL_AUTOCHECKPOINT_PAGES = 20_000

P = ParamSpec("P")
T = TypeVar("T")
Query = Callable[Concatenate[Connection, P], T]


def normalize_url(url: str) -> str:
    """Plain `sqlite:///` for SQLite; `postgresql+asyncpg://` for PostgreSQL."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        parsed = parsed.set(drivername="sqlite")
    elif parsed.get_backend_name() in ("postgresql", "postgres"):  # as platforms write it
        parsed = parsed.set(drivername="postgresql+asyncpg")
    else:
        raise ValueError(f"unsupported database {parsed.drivername!r}: use sqlite or postgresql")
    return parsed.render_as_string(hide_password=False)


class Database:
    def __init__(
        self,
        url: str,
        *,
        sqlite_synchronous: str = "FULL",
        pool_size: int = 10,
        local_clock: Callable[[], datetime] = utcnow,
        keyring: Keyring | None = None,
        timeout: float = 10.0,
    ) -> None:
        """`keyring` seals and opens stored secrets (store/sealing.py); without one, a
        connection can neither write nor read them. `timeout`: seconds a statement waits for
        SQLite's write lock, or to connect to PostgreSQL, before failing (store/outage.py), and
        a statement of `write_bounded` for PostgreSQL's answer.
        `local_clock`: this process's clock, from which the database's time is estimated."""
        answer_bound = timeout  # not the URL's connect_timeout: that one is for connecting
        self.url, timeout = _connect_timeout(normalize_url(url), timeout)
        # The database's time (leases), as this process estimates it (`sync_clock`).
        self.clock = DatabaseClock(local_clock)
        self.is_sqlite = make_url(self.url).get_backend_name() == "sqlite"
        self._timeout = timeout
        self._sync: Engine | None = None
        self._async: AsyncEngine | None = None
        self._bounded: AsyncEngine | None = None
        self._writer_conn: Connection | None = None
        # SQLite: the writer's DB-API connection as `drop_busy_handler` last saw it, and
        # whether that turned its busy handler off (a reconnect's new one is seen anew).
        self._writer_raw: object | None = None
        self._handler_off = False
        self.foreign_commits = ForeignCommits()  # SQLite: read by store/wakeups.py
        if self.is_sqlite:
            level = sqlite_synchronous.upper()
            if level not in SYNCHRONOUS_LEVELS:
                raise ValueError(f"TXMSG_SQLITE_SYNCHRONOUS must be one of {SYNCHRONOUS_LEVELS}")
            database = make_url(self.url).database
            if database and database != ":memory:":
                Path(database).parent.mkdir(parents=True, exist_ok=True)
            self._sync = create_engine(
                self.url,
                hide_parameters=True,  # errors must not carry secrets or message data
                json_serializer=_json_dumps,
                json_deserializer=orjson.loads,
                # The statement cache holds every multi-row INSERT text (store/bulk.py).
                connect_args={
                    "check_same_thread": False,
                    "timeout": timeout,  # busy_timeout: waiting for another process's write lock
                    "cached_statements": 512,
                },
                pool_size=SQLITE_READERS + 1,
            )
            _install_sqlite_pragmas(self._sync, level, timeout, database)
            self._writer = ThreadPoolExecutor(1, thread_name_prefix="txmsg-sqlite-writer")
            self._readers = ThreadPoolExecutor(
                SQLITE_READERS, thread_name_prefix="txmsg-sqlite-reader"
            )
        else:
            self._async = _pg_engine(self.url, timeout, statement_timeout=None, pool=pool_size)
            # The write funnel's own connections: a server that stops answering (a network
            # cut that drops packets, a failover behind an address that still takes them)
            # fails a write cycle within the bound instead of holding it, and the triggers
            # waiting on it, for as long as the kernel keeps the socket (asyncpg cancels the
            # statement, or drops the connection). Long statements (an admin's pause of a
            # large backlog, a sweep's mass expiry, schema upgrades) go through the others.
            self._bounded = _pg_engine(
                self.url, timeout, statement_timeout=answer_bound, pool=WRITE_CYCLE_CONNECTIONS
            )
        self.use_keyring(keyring)

    @property
    def timeout(self) -> float:
        """Seconds an operation waits for the database before it fails as unavailable."""
        return self._timeout

    def use_keyring(self, keyring: Keyring | None) -> None:
        """Seal and open stored secrets with `keyring` from now on."""
        self.keyring = keyring
        for engine in (self._sync, self._async, self._bounded):
            if engine is not None:
                install(
                    (engine if isinstance(engine, Engine) else engine.sync_engine).dialect, keyring
                )

    async def write(self, fn: Query[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run `fn(conn, ...)` in one write transaction: committed, or rolled back on error."""
        if self._async is not None:
            async with self._async.begin() as conn:
                return await conn.run_sync(fn, *args, **kwargs)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._writer, partial(self._write, fn, *args, **kwargs))

    async def write_bounded(self, fn: Query[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """`write`, each statement waiting at most the timeout for PostgreSQL's answer (the
        write funnel's cycles: a trigger's 201 or 503 waits on them); on SQLite, `write`
        (its wait is for the write lock, bounded the same)."""
        if self._bounded is not None:
            async with self._bounded.begin() as conn:
                return await conn.run_sync(fn, *args, **kwargs)
        return await self.write(fn, *args, **kwargs)

    async def read_bounded(self, fn: Query[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """`read`, bounded as `write_bounded` is (what the write funnel reads)."""
        if self._bounded is not None:
            async with self._bounded.connect() as conn:
                return await conn.run_sync(fn, *args, **kwargs)
        return await self.read(fn, *args, **kwargs)

    async def read(self, fn: Query[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        if self._async is not None:
            async with self._async.connect() as conn:
                return await conn.run_sync(fn, *args, **kwargs)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._readers, partial(self._read, fn, *args, **kwargs))

    def _write(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        conn = self._writer_connection()
        raw = conn.connection.dbapi_connection
        foreign = self.foreign_commits
        watched = foreign.watched
        try:
            with conn.begin():
                off = self._handler_off and raw is self._writer_raw
                begin_immediate(raw, self._timeout, handler_off=off)  # type: ignore[arg-type]
                if watched:
                    # Once the lock is held: it sees every other commit before this cycle, and
                    # (no busy handler) never meets one under way.
                    foreign.read(raw)  # type: ignore[arg-type]
                result = fn(conn, *args, **kwargs)
                if watched and conn.in_transaction():  # not a cycle `fn` rolled back
                    foreign.committing += 1  # before the COMMIT lands (see ForeignCommits)
        finally:
            if watched and foreign.committed != foreign.committing:
                foreign.committed = foreign.committing  # after it, landed or not
        return result

    def _writer_connection(self) -> Connection:
        assert self._sync is not None
        if self._writer_conn is None:
            self._writer_conn = self._sync.connect()
        raw = self._writer_conn.connection.dbapi_connection
        if raw is not self._writer_raw:
            self._writer_raw, self._handler_off = raw, drop_busy_handler(raw)  # type: ignore[arg-type]
        return self._writer_conn

    async def read_foreign_commits(self) -> None:
        """SQLite: read other processes' commits on the writer's connection now (between
        write cycles, which read them anyway)."""
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._writer, self._read_foreign_commits)

    def _read_foreign_commits(self) -> None:
        self.foreign_commits.read(self._writer_connection().connection.dbapi_connection)  # type: ignore[arg-type]

    def _read(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        assert self._sync is not None
        with self._sync.connect() as conn:
            return fn(conn, *args, **kwargs)

    async def sync_clock(self) -> None:
        """Measure this process's offset from the database's clock (`clock`)."""
        await self.read(self.clock.sync_in)

    async def dedicated(self) -> AsyncConnection:
        """PostgreSQL: a connection of its own in autocommit mode, outside the pool's reuse
        (a session-level advisory lock lives as long as it); the caller closes it."""
        if self._async is None:
            raise RuntimeError("a dedicated connection is for PostgreSQL")
        conn = await self._async.connect()
        return await conn.execution_options(isolation_level="AUTOCOMMIT")

    async def checkpoint(self) -> None:
        """SQLite: copy the WAL back into the database without holding up writers."""
        if self.is_sqlite:
            await self.read(_checkpoint)

    async def migrate(self) -> None:
        await self.write(upgrade_to_head)

    async def dispose(self) -> None:
        if self._async is not None:
            await self._async.dispose()
            if self._bounded is not None:
                await self._bounded.dispose()
            return
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._writer, self._close_writer)
        self._writer.shutdown(wait=True)
        self._readers.shutdown(wait=True)
        assert self._sync is not None
        self._sync.dispose()

    def _close_writer(self) -> None:
        if self._writer_conn is not None:
            self._writer_conn.close()
            self._writer_conn = None


def _connect_timeout(url: str, timeout: float) -> tuple[str, float]:
    """libpq's `connect_timeout` (seconds) as the timeout, when shorter, and out of the URL:
    asyncpg, which reads the URL's other libpq parameters, would send it to the server."""
    parsed = make_url(url)
    given = parsed.query.get("connect_timeout")
    if given is None:
        return url, timeout
    if isinstance(given, str) and given.isdigit() and int(given) > 0:
        timeout = min(timeout, float(given))
    return parsed.difference_update_query(["connect_timeout"]).render_as_string(
        hide_password=False
    ), timeout


def _discard_confused_connection(context: ExceptionContext) -> None:
    """asyncpg's `InternalClientError` ("cannot switch to state 12; another operation (2) is in
    progress"): a session ended under a transaction (`pg_terminate_backend`, a server restart)
    can leave its connection in that state, and SQLAlchemy (before its fix for issue 13241)
    put it back in the pool, where the next write cycles to take it failed the same way. A
    disconnect, then: that connection alone is discarded."""
    error = context.original_exception
    if isinstance(error, asyncpg.InternalClientError) or isinstance(
        error.__cause__, asyncpg.InternalClientError
    ):
        context.is_disconnect = True
        context.invalidate_pool_on_disconnect = False


def _pg_engine(
    url: str, timeout: float, *, statement_timeout: float | None, pool: int
) -> AsyncEngine:
    """A PostgreSQL engine over asyncpg: `pool` connections (and as many more at busy times),
    each waiting at most `statement_timeout` for a statement's answer."""
    # asyncpg reads the URL's libpq parameters itself (sslmode, sslrootcert, connect_timeout...
    # as hosting platforms give them); SQLAlchemy would pass them on as arguments asyncpg
    # does not take.
    dsn = make_url(url).set(drivername="postgresql")
    connect = {**_pg_connect_args(timeout), "command_timeout": statement_timeout}
    engine = create_async_engine(
        dsn.set(drivername="postgresql+asyncpg", query={}),
        async_creator=lambda: asyncpg.connect(dsn.render_as_string(hide_password=False), **connect),
        hide_parameters=True,
        json_serializer=_json_dumps,
        json_deserializer=orjson.loads,
        pool_size=pool,
        max_overflow=pool,
        pool_timeout=timeout,
    )
    event.listen(engine.sync_engine, "handle_error", _discard_confused_connection)
    return engine


def _pg_connect_args(timeout: float) -> dict[str, Any]:
    """asyncpg's connection arguments: each session names its process in `pg_stat_activity`
    (`txmsg[PID]`: which worker holds a lock, or a long query)."""
    return {"timeout": timeout, "server_settings": pg_session_settings()}


def pg_session_settings() -> dict[str, str]:
    """The settings of every PostgreSQL session of this process (the pool's, the listener's)."""
    return {"application_name": f"txmsg[{os.getpid()}]"}


def _checkpoint(conn: Connection) -> None:
    conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")


def _json_dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def _owner_only(database: str | None) -> None:
    """The database file readable by its owner alone (not the umask's 0644): it holds every
    recipient's address and payload. SQLite gives its WAL and shared-memory files the mode
    of the database file."""
    if not database or database == ":memory:":
        return
    with contextlib.suppress(OSError):  # not ours to change: left as it is
        path = Path(database)
        if path.stat().st_mode & 0o077:
            path.chmod(0o600)


def _install_sqlite_pragmas(
    engine: Engine, synchronous: str, timeout: float, database: str | None = None
) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        _owner_only(database)  # before WAL mode makes the -wal and -shm files
        cursor = dbapi_conn.cursor()
        cursor.execute(f"PRAGMA busy_timeout={int(timeout * 1000)}")
        # WAL: readers never block the writer; group commit makes each fsync count.
        _set_wal(cursor)
        cursor.execute(f"PRAGMA synchronous={synchronous}")
        cursor.execute("PRAGMA foreign_keys=ON")
        # Checkpoints run off the write path (`Database.checkpoint`, every housekeeping sweep):
        # one inline every 1,000 pages (SQLite's default) cost a fifth of the trigger rate.
        # The inline one stays as a safety net, at 80 MB of WAL.
        cursor.execute(f"PRAGMA wal_autocheckpoint={WAL_AUTOCHECKPOINT_PAGES}")
        cursor.close()


def _set_wal(cursor: Any, patience: float = 30.0) -> None:
    """`PRAGMA journal_mode=WAL`, waiting out another process's first transaction.

    On a database file another process is creating, the mode change needs a lock SQLite does
    not wait for (no busy handler): "database is locked" at once. Retry, like the busy handler.
    """
    deadline = time.monotonic() + patience
    delay = 0.005
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(delay)  # a new connection, on a worker thread: not the event loop
            delay = min(delay * 2, 0.2)
