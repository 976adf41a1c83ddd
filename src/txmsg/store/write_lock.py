"""SQLite: take the database's write lock at the start of a write transaction, promptly.

Several processes on one SQLite file (an API and a worker) take turns at its one write lock.
SQLite's own busy handler, when the lock is taken, sleeps 1, 2, 5, 10, 15, 20 ms... between
tries, however soon the lock is free again: a cycle of the other process holds it for a
millisecond or two, so a waiting writer slept through most of its turn (an API and a worker
sending flat out spent a fifth and two fifths of their writers' time asleep there). Here the
writer tries `BEGIN IMMEDIATE` with no busy handler, and sleeps 0.1 ms at first, then longer,
at most 1 ms: it takes the lock within a fraction of a millisecond of its release.

`BEGIN IMMEDIATE` takes the lock before the transaction's first statement, so no statement
inside it waits for another writer (nor fails for another's commit since its first read). In
WAL mode nothing else makes one wait either (readers never block a WAL writer's commit), so
the writer's connection can keep no busy handler at all (`drop_busy_handler`): its cycle is then
three SQLite calls, not five (four where the process watches for other processes' commits),
and each call gives up the GIL, to take it back only when the busy event loop lets go of it
(two calls fewer a cycle raised the trigger rate about 10%).
"""

from __future__ import annotations

import sqlite3
import time

FIRST_WAIT = 0.0001
LONGEST_WAIT = 0.001


def drop_busy_handler(conn: sqlite3.Connection) -> bool:
    """In WAL mode, `conn`'s busy timeout set to 0 for good, and True: `begin_immediate` then
    needs no `handler_off`. Other journal modes (a COMMIT waits there for readers) keep it."""
    mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
    if str(mode).lower() != "wal":
        return False
    conn.execute("PRAGMA busy_timeout=0")
    return True


def begin_immediate(conn: sqlite3.Connection, timeout: float, *, handler_off: bool = False) -> None:
    """`BEGIN IMMEDIATE` on `conn`, tried again while another connection holds the write lock,
    for up to `timeout` seconds; then the last "database is locked" error is raised (an
    outage, store/outage.py). `handler_off`: `conn`'s busy timeout is 0 already
    (`drop_busy_handler`); otherwise it is set to 0 for the tries and to `timeout` again
    before returning, for the transaction's statements."""
    if handler_off:
        _take(conn, time.monotonic() + timeout)
        return
    conn.execute("PRAGMA busy_timeout=0")  # a try fails at once instead of sleeping in SQLite
    try:
        _take(conn, time.monotonic() + timeout)
    finally:
        conn.execute(f"PRAGMA busy_timeout={int(timeout * 1000)}")


def _take(conn: sqlite3.Connection, deadline: float) -> None:
    wait = FIRST_WAIT
    while True:
        try:
            conn.execute("BEGIN IMMEDIATE")  # the common case: nobody else is writing
            return
        except sqlite3.OperationalError as exc:
            if not _busy(exc) or time.monotonic() >= deadline:
                raise
        time.sleep(wait)  # on the writer's thread, never the event loop's
        wait = min(wait * 2, LONGEST_WAIT)


def _busy(exc: sqlite3.OperationalError) -> bool:
    # The extended code (SQLITE_BUSY_RECOVERY, _SNAPSHOT...): its low byte is the primary one.
    code = getattr(exc, "sqlite_errorcode", None)
    return code is not None and code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
