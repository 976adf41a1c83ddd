"""SQLite: other processes' commits, as this process's writer connection sees them.

A connection's `PRAGMA data_version` changes when another connection commits, never for its
own commits. Read on the writer's connection as each write cycle takes its lock (one cheap
statement, on the writer's thread), it tells a watcher (store/wakeups.py) whether a commit it
noticed was another process's, which should wake this one, or this process's own, which
should not: a wake costs a claim, and each of its own commits would otherwise cost one more.
"""

from __future__ import annotations

import sqlite3


class ForeignCommits:
    """Counters the writer's thread raises and a watcher on the event loop reads (ints: the
    GIL keeps each read whole)."""

    def __init__(self) -> None:
        self.watched = False  # read the version at each cycle (a watcher asked for it)
        self.begun = 0  # readings made (one at the start of each cycle while watched)
        # Write cycles while watched: `committing` counts one just before its COMMIT, and
        # `committed` once the COMMIT returned (landed or failed). A watcher that sees the
        # database change reads `committing` after the change, and compares it with
        # `committed` read before its previous check: a commit of this process's that landed
        # in between is counted in the first and not in the second, whatever the threads'
        # timing (counted only once landed, one landing just before a check was taken for
        # another's and woke the process for nothing).
        self.committing = 0
        self.committed = 0
        self.seen = 0  # readings that found the version changed since the one before
        self._version: int | None = None
        self._conn: sqlite3.Connection | None = None  # versions compare on one connection only

    def read(self, conn: sqlite3.Connection) -> None:
        """On the writer's thread, with the writer's connection, before a cycle (or alone)."""
        version = conn.execute("PRAGMA data_version").fetchone()[0]
        if self._conn is not None and (conn is not self._conn or version != self._version):
            self.seen += 1  # a new connection (after a reconnect) may have missed one
        self._conn, self._version = conn, version
        self.begun += 1
