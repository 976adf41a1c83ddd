"""Database engines: SQLite (embedded default) and PostgreSQL (scale-out), one code path."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from txmsg.store.migrations import upgrade_to_head

SYNCHRONOUS_LEVELS = ("OFF", "NORMAL", "FULL", "EXTRA")


def async_url(url: str) -> str:
    """Accept plain `sqlite:///` and `postgresql://` URLs and pick the async drivers."""
    parsed = make_url(url)
    if parsed.drivername in ("sqlite", "sqlite+pysqlite"):
        parsed = parsed.set(drivername="sqlite+aiosqlite")
    elif parsed.drivername in ("postgresql", "postgres", "postgresql+psycopg2"):
        parsed = parsed.set(drivername="postgresql+asyncpg")
    return parsed.render_as_string(hide_password=False)


class Database:
    """The engine plus the one place writes go through.

    SQLite has one writer at a time: every write transaction takes `_write_lock`, so writers
    queue in the event loop instead of spinning on SQLITE_BUSY, and callers batch many rows per
    transaction. PostgreSQL needs no such funnel; row locks and SKIP LOCKED do the work.
    """

    def __init__(self, url: str, *, sqlite_synchronous: str = "FULL", pool_size: int = 10) -> None:
        self.url = async_url(url)
        self.dialect = make_url(self.url).get_backend_name()
        self.is_sqlite = self.dialect == "sqlite"
        kwargs: dict[str, Any] = {}
        if self.is_sqlite:
            database = make_url(self.url).database
            if database and database != ":memory:":
                Path(database).parent.mkdir(parents=True, exist_ok=True)
            kwargs["connect_args"] = {"timeout": 30}
        else:
            kwargs["pool_size"] = pool_size
            kwargs["max_overflow"] = pool_size
        self.engine: AsyncEngine = create_async_engine(self.url, **kwargs)
        if self.is_sqlite:
            level = sqlite_synchronous.upper()
            if level not in SYNCHRONOUS_LEVELS:
                raise ValueError(f"TXMSG_SQLITE_SYNCHRONOUS must be one of {SYNCHRONOUS_LEVELS}")
            _install_sqlite_pragmas(self.engine, level)
        self._write_lock = asyncio.Lock() if self.is_sqlite else None
        self._writer: AsyncConnection | None = None

    @contextlib.asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        """One write transaction: committed on exit, rolled back on error."""
        if self._write_lock is None:
            async with self.engine.begin() as conn:
                yield conn
            return
        async with self._write_lock:
            # One long-lived connection for SQLite writes: no pool checkout, no reset per batch.
            if self._writer is None:
                self._writer = await self.engine.connect()
            async with self._writer.begin():
                yield self._writer

    @contextlib.asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        async with self.engine.connect() as conn:
            yield conn

    async def migrate(self) -> None:
        async with self.engine.begin() as conn:
            await conn.run_sync(upgrade_to_head)

    async def dispose(self) -> None:
        if self._writer is not None:
            await self._writer.close()
            self._writer = None
        await self.engine.dispose()


def _install_sqlite_pragmas(engine: AsyncEngine, synchronous: str) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        cursor = dbapi_conn.cursor()
        # WAL: readers never block the writer; group commit makes each fsync count.
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA synchronous={synchronous}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()
