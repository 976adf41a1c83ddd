"""Engines under test: a fresh store (SQLite file or PostgreSQL database), its processes, and
a reader of its events table (counts, send times) for the benchmarks to wait on and measure."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).parents[1] / "src"))

from _common import engine_env, free_port, process, serve_args, wait_port
from txmsg.store.db import Database
from txmsg.store.tables import events

PG_HOST = os.environ.get("BENCH_PG", "postgres@127.0.0.1:5432")
ENGINES = ("sqlite", "postgresql")


@dataclass(frozen=True)
class Store:
    engine: str  # "sqlite" or "postgresql"
    data_dir: Path
    url: str  # TXMSG_DATABASE_URL

    @property
    def env(self) -> dict[str, str]:
        return {**engine_env(self.data_dir), "TXMSG_DATABASE_URL": self.url}


@contextlib.contextmanager
def store(engine: str) -> Iterator[Store]:
    """A new, empty database of `engine`, dropped afterwards."""
    with tempfile.TemporaryDirectory() as tmp:
        if engine == "sqlite":
            yield Store(engine, Path(tmp), f"sqlite:///{Path(tmp) / 'txmsg.db'}")
            return
        name = f"txmsg_bench_{uuid.uuid4().hex[:10]}"
        asyncio.run(_pg_admin(f"CREATE DATABASE {name}"))
        try:
            yield Store(engine, Path(tmp), f"postgresql+asyncpg://{PG_HOST}/{name}")
        finally:
            asyncio.run(_pg_admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


async def _pg_admin(statement: str) -> None:
    conn = await asyncpg.connect(f"postgresql://{PG_HOST}/postgres")
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "txmsg.cli", *args]


@contextlib.contextmanager
def deployment(
    store: Store, apis: int = 1, workers: int = 0, *, api_only: bool = False
) -> Iterator[list[str]]:
    """`apis` HTTP processes (`serve`, or `serve --role api` with `workers` or `api_only`) and
    `workers` worker processes on `store`; yields the APIs' base URLs once all answer."""
    env = store.env
    with contextlib.ExitStack() as stack:
        if apis + workers > 1:  # one schema upgrade, before the processes race for it
            stack.enter_context(process(_cli("migrate"), env=env)).wait(60)
        urls = []
        for _ in range(apis):
            port = free_port()
            role = ["--role", "api"] if workers or api_only else []
            stack.enter_context(process([*serve_args(port), *role], env=env, port=port))
            urls.append(f"http://127.0.0.1:{port}")
        for _ in range(workers):
            health = free_port()
            args = _cli("worker", "--health-port", str(health))
            stack.enter_context(process(args, env=env))
            wait_port(health, 30)
        yield urls


class Reader:
    """The events table, read from the benchmark's own process (one loop, one engine)."""

    def __init__(self, store: Store) -> None:
        self._runner = asyncio.Runner()
        self._db = Database(store.url)

    def close(self) -> None:
        self._runner.run(self._db.dispose())
        self._runner.close()

    def counts(self) -> dict[str, int]:
        """Events by status."""
        q = sa.select(events.c.status, sa.func.count()).group_by(events.c.status)
        return {s: int(n) for s, n in self._read(q)}

    def sent_at(self, event_id: str) -> dict[str, datetime]:
        """PKey -> when SMTP accepted it, for the sent events of `event_id`."""
        q = sa.select(events.c.pkey, events.c.sent_at).where(
            events.c.event_id == event_id, events.c.sent_at.is_not(None)
        )
        return {pkey: at for pkey, at in self._read(q)}

    def last_sent(self) -> datetime | None:
        rows = self._read(sa.select(sa.func.max(events.c.sent_at)))
        value = rows[0][0]
        if isinstance(value, str):  # SQLite's max() of the stored text
            value = datetime.fromisoformat(value + "+00:00")
        return value  # type: ignore[no-any-return]

    def wait_sent(self, timeout: float = 600) -> dict[str, int]:
        """Wait until no event is `pending` or `processing`; the final counts."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            counts = self.counts()
            if not counts.get("pending") and not counts.get("processing"):
                return counts
            time.sleep(0.05)
        raise RuntimeError(f"events still queued after {timeout}s: {self.counts()}")

    def _read(self, query: Any) -> list[Any]:
        async def run() -> list[Any]:
            return await self._db.read(lambda conn: list(conn.execute(query)))

        return self._runner.run(run())


@contextlib.contextmanager
def reader(store: Store) -> Iterator[Reader]:
    r = Reader(store)
    try:
        yield r
    finally:
        r.close()
