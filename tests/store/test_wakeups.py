"""Wake-ups across processes: a cycle leaving events queued wakes a watcher elsewhere."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
from queue_support import new_event

from conftest import PG_DSN
from helpers import wait_until
from txmsg.core.queue import EnqueueResult
from txmsg.core.statuses import EventStatus
from txmsg.store import wakeups
from txmsg.store.db import Database
from txmsg.store.foreign_commits import ForeignCommits
from txmsg.store.queue.cycle import CycleRequest, left_queued, write_cycle
from txmsg.store.wakeups import CHANNEL, NotifyListener, Wakeups, wakeups_for
from txmsg.store.wakeups import _data_version as read_version


class Counter:
    def __init__(self) -> None:
        self.count = 0

    def __call__(self) -> None:
        self.count += 1


async def _ready(watcher: Wakeups) -> None:
    await asyncio.wait_for(watcher.ready(), 5)  # its first data_version read, or listening


@contextlib.asynccontextmanager
async def watching(db: Database, woken: Counter) -> AsyncIterator[None]:
    """A watcher of `db` calling `woken`, ready (it would see the next commit), then stopped."""
    watcher = wakeups_for(db, woken)
    watcher.start()
    try:
        await _ready(watcher)
        yield
    finally:
        await watcher.stop()


async def test_a_cycle_leaving_events_queued_wakes_a_watcher(
    db: Database, other_db: Database
) -> None:
    woken = Counter()
    async with watching(db, woken):
        await asyncio.sleep(0.1)
        assert woken.count == 0, "woken with nothing committed"
        # An API process's cycle: no room, so the event stays queued for a worker.
        await other_db.write(write_cycle, CycleRequest(new=[new_event()], wake_others=True))
        await wait_until(lambda: woken.count >= 1, timeout=2, what="a wake-up")


async def test_this_process_own_commits_wake_nothing(db: Database) -> None:
    """A `serve` process's own cycles (SQLite: its watcher's connection sees them too) need no
    wake: its writer hands over what it leases, and a wake would cost a claim."""
    woken = Counter()
    async with watching(db, woken):
        for _ in range(20):
            await db.write(write_cycle, CycleRequest(new=[new_event()]))
            await asyncio.sleep(0.004)  # commits in some checks' intervals, none in others
        await asyncio.sleep(0.1)
        assert woken.count == 0


async def test_another_process_commit_wakes_amid_this_process_own(
    db: Database, other_db: Database
) -> None:
    """Another process's commit wakes the watcher even when this process committed in the
    same interval (SQLite: the check that saw both asks the writer's connection)."""
    woken = Counter()
    async with watching(db, woken):
        for _ in range(10):
            before = woken.count
            ours = asyncio.create_task(db.write(write_cycle, CycleRequest(new=[new_event()])))
            await asyncio.sleep(0)  # ours begins first: its reading comes before their commit
            theirs = CycleRequest(new=[new_event()], wake_others=True)
            await other_db.write(write_cycle, theirs)
            await ours
            await wait_until(lambda: woken.count > before, timeout=5, what="a wake-up")  # noqa: B023
            await asyncio.sleep(0.02)


async def test_a_commit_of_another_before_this_process_first_cycle_wakes(
    db: Database, other_db: Database
) -> None:
    """Their commit, then this process's first cycle since the watcher started, within one
    check: the writer's reading to compare with is the one the watcher made at its start."""
    woken = Counter()
    async with watching(db, woken):
        # No await between them: one check interval. The calls block the loop; the test's
        # own writer thread is idle meanwhile (the watcher asks it only after a check).
        other_db._write(write_cycle, CycleRequest(new=[new_event()], wake_others=True))
        db._write(write_cycle, CycleRequest(new=[new_event()]))
        await wait_until(lambda: woken.count >= 1, timeout=5, what="a wake-up")


async def test_a_failed_check_misses_no_commit_of_another(
    db: Database, other_db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A check that fails compares nothing; the next compares with the counters taken before
    the last check that read the version (not with ones that already counted their commit)."""
    woken = Counter()
    failed = asyncio.Event()
    fail_next = False

    def flaky(conn: sqlite3.Connection) -> int:
        nonlocal fail_next
        if fail_next:
            fail_next = False
            failed.set()
            raise sqlite3.OperationalError("disk I/O error")
        return read_version(conn)

    monkeypatch.setattr(wakeups, "_data_version", flaky)
    async with watching(db, woken):
        await db.write(write_cycle, CycleRequest(new=[new_event()]))
        await asyncio.sleep(0.05)
        assert woken.count == 0
        fail_next = True
        other_db._write(write_cycle, CycleRequest(new=[new_event()], wake_others=True))
        db._write(write_cycle, CycleRequest(new=[new_event()]))  # its reading counts theirs
        await failed.wait()
        db._write(write_cycle, CycleRequest(new=[new_event()]))
        await wait_until(lambda: woken.count >= 1, timeout=5, what="a wake-up")


def test_a_new_writer_connection_counts_as_a_commit_of_another(tmp_path: Path) -> None:
    """Versions compare on one connection only (a fresh one starts again): after the writer
    reconnects, its first reading says another may have committed (a wake too many at most)."""
    foreign = ForeignCommits()
    first, second = (sqlite3.connect(tmp_path / "x.db") for _ in range(2))
    try:
        foreign.read(first)
        foreign.read(first)
        assert foreign.seen == 0
        foreign.read(second)
        assert foreign.seen == 1
    finally:
        first.close()
        second.close()


async def test_a_watcher_that_failed_does_not_stop_the_process_stop(
    db: Database, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(conn: sqlite3.Connection) -> int:
        raise RuntimeError("unexpected")

    watcher = wakeups_for(db, Counter())
    monkeypatch.setattr(wakeups, "_data_version", broken)
    watcher.start()
    await asyncio.sleep(0.05)
    await watcher.stop()  # logged, not raised: the engine's stop goes on
    assert "watching for other processes' commits had failed" in caplog.text


# SQLite's version checks (PostgreSQL LISTENs: the tests above and below).
test_a_commit_of_another_before_this_process_first_cycle_wakes.sqlite_only = True  # type: ignore[attr-defined]
test_a_failed_check_misses_no_commit_of_another.sqlite_only = True  # type: ignore[attr-defined]
test_a_watcher_that_failed_does_not_stop_the_process_stop.sqlite_only = True  # type: ignore[attr-defined]


async def test_a_lost_listen_connection_is_reopened() -> None:
    woken = Counter()
    listener = NotifyListener(PG_DSN, woken)
    listener.start()
    try:
        await asyncio.wait_for(listener.listening.wait(), 5)
        admin = await asyncpg.connect(PG_DSN)
        try:
            # This database's listeners only: other tests' processes listen on theirs.
            await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE"
                " 'LISTEN%' AND datname = current_database() AND pid <> pg_backend_pid()"
            )
            # On the loss it wakes anyway (commits may have been missed), then listens again,
            # and wakes once more: what was committed until then notified nobody.
            await wait_until(lambda: woken.count >= 1, timeout=5, what="a wake-up on the loss")
            await wait_until(lambda: not listener.listening.is_set(), timeout=5, what="the loss")
            await asyncio.wait_for(listener.listening.wait(), 5)
            assert woken.count >= 2
            before = woken.count
            await admin.execute(f"SELECT pg_notify('{CHANNEL}', '')")
            await wait_until(lambda: woken.count > before, timeout=5, what="a NOTIFY")
        finally:
            await admin.close()
    finally:
        await listener.stop()


def test_left_queued_counts_created_pending_events_not_leased() -> None:
    created, replay = EnqueueResult("created", {}), EnqueueResult("replay", {})
    due, paused = new_event(), new_event(status=EventStatus.PAUSED)
    assert left_queued([due, due], [created, created], leased=0) == 2
    assert left_queued([due, due], [created, created], leased=2) == 0
    assert left_queued([due, due], [created, replay], leased=0) == 1  # a replay inserts nothing
    assert left_queued([paused], [created], leased=0) == 0  # paused: not due for a worker


async def test_the_listen_session_is_named_after_its_process(db: Database) -> None:
    """As the pool's sessions are (`txmsg[PID]` in pg_stat_activity): which process a session
    belongs to, when an operator looks."""
    watcher = wakeups_for(db, Counter())
    watcher.start()
    try:
        await _ready(watcher)
        dsn = db.url.replace("postgresql+asyncpg://", "postgresql://")
        admin = await asyncpg.connect(dsn)
        try:
            names = await admin.fetchval(
                "SELECT array_agg(application_name) FROM pg_stat_activity WHERE query LIKE"
                " 'LISTEN%' AND datname = current_database()"
            )
        finally:
            await admin.close()
        assert names == [f"txmsg[{os.getpid()}]"]
    finally:
        await watcher.stop()


test_the_listen_session_is_named_after_its_process.postgresql_only = True  # type: ignore[attr-defined]
