"""Whether an error means the database is unavailable for now (locked, unreachable, restarting),
as opposed to a fault of the request or of the code: the API answers the first with a 503 and
`Retry-After`, and nothing was stored."""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable, Iterator

from asyncpg import exceptions as pg
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout

# Seconds a caller is asked to wait before trying again.
RETRY_AFTER_SECONDS = 2

_SQLITE_BUSY = ("database is locked", "database table is locked", "database is busy")
# What PostgreSQL (or asyncpg) says when the database, not the statement, is at fault: trying
# the same statement later may succeed. A query's own errors (a constraint, a cancelled or
# timed-out statement, a syntax error) are not among them.
_PG_UNAVAILABLE = (
    pg.PostgresConnectionError,  # 08xxx: refused, lost, does not exist (closed mid-operation)
    # 57P01-57P05: admin shutdown (a terminated backend), crash shutdown, cannot connect now
    # (starting up, shutting down, recovery), database dropped, idle session timeout.
    pg.AdminShutdownError,
    pg.CrashShutdownError,
    pg.CannotConnectNowError,
    pg.DatabaseDroppedError,
    pg.IdleSessionTimeoutError,
    pg.InsufficientResourcesError,  # 53xxx: too many connections, disk full, out of memory
    pg.InvalidCatalogNameError,  # 3D000: the database does not exist (renamed, not yet made)
    pg.InvalidAuthorizationSpecificationError,  # 28000, 28P01: the role may not log in (now)
    pg.InterfaceError,  # "connection is closed"
)


def is_rolled_back(exc: BaseException) -> bool:
    """True when PostgreSQL rolled the transaction back to break a deadlock or a serialization
    conflict with another one: nothing was written, and running it again is the cure."""
    return _caused_by(exc, lambda e: isinstance(e, pg.TransactionRollbackError))


def is_unavailable(exc: BaseException) -> bool:
    """True when `exc`, or an error it was raised from, says the database cannot be reached
    or is locked by another writer."""
    return _caused_by(exc, _unavailable)


def _caused_by(exc: BaseException, test: Callable[[BaseException], bool]) -> bool:
    """Whether `test` holds for `exc` or an error it was raised from."""
    return any(test(error) for error in causes(exc))


def causes(exc: BaseException) -> Iterator[BaseException]:
    """`exc` and the errors it was raised from (a driver's error under SQLAlchemy's)."""
    seen: set[int] = set()
    error: BaseException | None = exc
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        yield error
        orig = getattr(error, "orig", None) if isinstance(error, DBAPIError) else None
        error = orig if isinstance(orig, BaseException) else (error.__cause__ or error.__context__)


def _unavailable(error: BaseException) -> bool:
    if isinstance(error, DBAPIError) and error.connection_invalidated:
        return True
    if isinstance(error, sqlite3.OperationalError):
        return str(error).startswith(_SQLITE_BUSY)
    if isinstance(error, (*_PG_UNAVAILABLE, PoolTimeout)):  # PoolTimeout: all connections busy
        return True
    # Connecting: refused, reset, timed out (asyncpg raises these unwrapped).
    return isinstance(error, ConnectionError | TimeoutError)


# Seconds between two "still unavailable" lines of one component during an outage.
OUTAGE_LOG_EVERY_SECONDS = 60.0


class OutageLog:
    """How one component of a process tells a database outage: one WARNING line when it
    begins, at most one short line every `every` seconds while it lasts, one INFO line when it
    ends; never a traceback (the error is known, and would be one per try). Errors that do not
    mean the database is unavailable are the caller's to log, traceback and all."""

    def __init__(
        self,
        logger: logging.Logger,
        what: str,
        every: float = OUTAGE_LOG_EVERY_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`what`: the component's work, as the lines name it ("claiming events")."""
        self._log = logger
        self._what = what
        self._every = every
        self._clock = clock
        self._began: float | None = None
        self._last_line = 0.0
        self._failures = 0

    @property
    def ongoing(self) -> bool:
        return self._began is not None

    def failed(self, exc: BaseException) -> bool:
        """Told the outage `exc` means, and True; False (nothing logged) for another error."""
        if not is_unavailable(exc):
            return False
        now = self._clock()
        self._failures += 1
        if self._began is None:
            self._began = self._last_line = now
            self._log.warning(
                "%s: the database is unavailable (%s); trying again until it is back",
                self._what,
                _short(exc),
            )
        elif now - self._last_line >= self._every:
            self._last_line = now
            self._log.warning(
                "%s: the database is still unavailable after %.0f s (%d failures; %s)",
                self._what,
                now - self._began,
                self._failures,
                _short(exc),
            )
        return True

    def ok(self) -> None:
        """The component's work succeeded: the outage, if there was one, is over."""
        if self._began is None:
            return
        self._log.info(
            "%s: the database is back after %.1f s (%d failures)",
            self._what,
            self._clock() - self._began,
            self._failures,
        )
        self._began = None
        self._failures = 0


def _short(exc: BaseException) -> str:
    """The error that says why, in one short line: the driver's, under SQLAlchemy's."""
    known = [e for e in causes(exc) if _unavailable(e)]
    error = known[-1] if known else exc  # the deepest: the driver's own error
    if isinstance(error, DBAPIError) and error.orig is not None:  # its text holds the SQL
        error = error.orig.__cause__ or error.orig
    text = " ".join(str(error).split())
    if len(text) > 200:
        text = text[:197] + "..."
    return f"{type(error).__name__}: {text}" if text else type(error).__name__
