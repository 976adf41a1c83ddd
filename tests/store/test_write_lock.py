"""SQLite's write lock, taken by `begin_immediate` while another connection (another process's
writer) holds it and then lets it go."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from txmsg.store.db import Database
from txmsg.store.write_lock import _busy, begin_immediate, drop_busy_handler

TIMEOUT = 10.0
HOLD = 0.055  # how long another writer holds the lock


@pytest.fixture
def path(tmp_path: Path) -> Path:
    db = tmp_path / "lock.db"
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("CREATE TABLE t (x INTEGER)")
    return db


@pytest.fixture
def writer(path: Path) -> Iterator[sqlite3.Connection]:
    conn = sqlite3.connect(path, timeout=TIMEOUT, check_same_thread=False)
    yield conn
    conn.close()


def _hold(path: Path, seconds: float) -> tuple[threading.Thread, list[float]]:
    """Another connection holds the write lock for `seconds`; the list gets when it let go."""
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    released: list[float] = []

    def release() -> None:
        time.sleep(seconds)
        other.execute("INSERT INTO t VALUES (1)")
        other.execute("COMMIT")
        released.append(time.monotonic())
        other.close()

    thread = threading.Thread(target=release)
    thread.start()
    return thread, released


def _busy_timeout(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA busy_timeout").fetchone()[0])


def test_the_lock_is_taken_at_once_when_free(writer: sqlite3.Connection) -> None:
    begin_immediate(writer, TIMEOUT)
    assert writer.in_transaction
    writer.execute("INSERT INTO t VALUES (2)")
    writer.commit()
    assert _busy_timeout(writer) == TIMEOUT * 1000


def test_the_lock_is_taken_soon_after_another_writer_lets_go(
    path: Path, writer: sqlite3.Connection
) -> None:
    # SQLite's own busy handler tries at 0, 1, 3, 8, 18, 33, 53 and 78 ms: a lock let go at
    # 55 ms is taken 23 ms late. Here the tries come at most 1 ms apart. The least late of
    # three, against a thread stalled by a busy machine.
    late = []
    for _ in range(3):
        thread, released = _hold(path, HOLD)
        begin_immediate(writer, TIMEOUT)
        taken = time.monotonic()
        thread.join()
        writer.commit()
        late.append(taken - released[0])
    assert min(late) < 0.010, late
    assert _busy_timeout(writer) == TIMEOUT * 1000
    assert writer.execute("SELECT count(*) FROM t").fetchone()[0] == 3


def test_a_lock_held_past_the_timeout_is_an_outage(path: Path, writer: sqlite3.Connection) -> None:
    thread, _ = _hold(path, 1.5)
    started = time.monotonic()
    with pytest.raises(sqlite3.OperationalError, match="database is locked"):
        begin_immediate(writer, 0.1)
    assert 0.1 <= time.monotonic() - started < 1.0  # its own timeout, not the holder's 1.5 s
    assert not writer.in_transaction
    thread.join()
    assert _busy_timeout(writer) == 100  # its own timeout, for the statements of a transaction


async def test_a_write_cycle_takes_the_lock_soon_after_another_process(tmp_path: Path) -> None:
    """`Database.write` on SQLite goes through `begin_immediate`."""
    db = Database(f"sqlite:///{tmp_path / 'txmsg.db'}")
    try:
        await db.write(lambda conn: conn.exec_driver_sql("CREATE TABLE t (x INTEGER)"))
        late = []
        tries = 8  # the best of them: a loaded machine's scheduling delays some hand-offs
        for _ in range(tries):
            thread, released = _hold(tmp_path / "txmsg.db", HOLD)
            await db.write(lambda conn: conn.exec_driver_sql("INSERT INTO t VALUES (2)"))
            taken = time.monotonic()  # the loop's: a hand-off later than the writer's
            await asyncio.to_thread(thread.join)
            late.append(taken - released[0])
        assert min(late) < 0.012, late
        count = await db.read(lambda conn: conn.exec_driver_sql("SELECT count(*) FROM t").scalar())
        assert count == 2 * tries
    finally:
        await db.dispose()


def test_in_wal_mode_the_busy_handler_is_dropped_and_the_lock_still_waited_for(
    path: Path, writer: sqlite3.Connection
) -> None:
    assert drop_busy_handler(writer)
    assert _busy_timeout(writer) == 0
    thread, released = _hold(path, HOLD)
    begin_immediate(writer, TIMEOUT, handler_off=True)
    taken = time.monotonic()
    thread.join()
    writer.commit()
    assert taken >= released[0]
    assert _busy_timeout(writer) == 0  # left off: the cycle's statements wait for nobody


def test_other_journal_modes_keep_the_busy_handler(tmp_path: Path) -> None:
    # Outside WAL mode a COMMIT waits for readers: it needs the handler.
    conn = sqlite3.connect(tmp_path / "rollback.db", timeout=TIMEOUT)
    try:
        assert not drop_busy_handler(conn)
        assert _busy_timeout(conn) == TIMEOUT * 1000
    finally:
        conn.close()


async def test_a_write_cycle_is_three_sqlite_calls(tmp_path: Path) -> None:
    """BEGIN IMMEDIATE, the cycle's statement and COMMIT: no busy-timeout changes around
    them (each call gives up the GIL, and a busy event loop is slow to give it back)."""
    db = Database(f"sqlite:///{tmp_path / 'txmsg.db'}")
    try:
        await db.write(lambda conn: conn.exec_driver_sql("CREATE TABLE t (x INTEGER)"))
        seen: list[str] = []

        def trace(conn: Any) -> None:
            conn.connection.dbapi_connection.set_trace_callback(seen.append)

        await db.write(trace)
        seen.clear()
        await db.write(lambda conn: conn.exec_driver_sql("INSERT INTO t VALUES (1)"))
        assert seen == ["BEGIN IMMEDIATE", "INSERT INTO t VALUES (1)", "COMMIT"]
    finally:
        await db.dispose()


def test_busy_in_its_extended_forms_is_tried_again() -> None:
    # Python reports SQLite's extended code: SQLITE_BUSY_RECOVERY (261) is the lock's too.
    recovering = sqlite3.OperationalError("database is locked")
    recovering.sqlite_errorcode = 261  # type: ignore[attr-defined]
    assert _busy(recovering)
    unique = sqlite3.OperationalError("UNIQUE constraint failed")
    unique.sqlite_errorcode = 2067  # type: ignore[attr-defined]
    assert not _busy(unique)


async def test_a_rolled_back_cycle_is_not_counted_as_a_commit_of_this_process(
    tmp_path: Path,
) -> None:
    """The foreign-commit watch counts this process's commits (store/foreign_commits.py); a
    cycle its function rolled back made none."""
    db = Database(f"sqlite:///{tmp_path / 'txmsg.db'}")
    try:
        await db.write(lambda conn: conn.exec_driver_sql("CREATE TABLE t (x INTEGER)"))
        db.foreign_commits.watched = True
        await db.write(lambda conn: conn.exec_driver_sql("INSERT INTO t VALUES (1)"))
        assert db.foreign_commits.committing == 1

        def nothing_kept(conn: Any) -> None:
            conn.exec_driver_sql("INSERT INTO t VALUES (2)")
            conn.rollback()

        await db.write(nothing_kept)
        assert db.foreign_commits.committing == 1
        assert db.foreign_commits.committed == 1
        count = await db.read(lambda conn: conn.exec_driver_sql("SELECT count(*) FROM t").scalar())
        assert count == 1
    finally:
        await db.dispose()
