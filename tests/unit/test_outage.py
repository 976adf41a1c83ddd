"""Which errors mean the database is away for now (503 + Retry-After), and which are faults."""

from __future__ import annotations

import sqlite3

from asyncpg import exceptions as pg
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from txmsg.store.outage import is_unavailable


def _wrapped(orig: BaseException) -> OperationalError:
    return OperationalError("INSERT ...", None, orig)


def test_locked_unreachable_or_busy_is_unavailable() -> None:
    assert is_unavailable(_wrapped(sqlite3.OperationalError("database is locked")))
    assert is_unavailable(_wrapped(pg.AdminShutdownError("terminating connection")))
    assert is_unavailable(_wrapped(pg.ConnectionDoesNotExistError("closed mid-operation")))
    assert is_unavailable(ConnectionRefusedError(111, "Connection refused"))
    assert is_unavailable(PoolTimeout("QueuePool limit reached"))
    try:
        try:
            raise ConnectionResetError("reset by peer")
        except ConnectionResetError as exc:
            raise RuntimeError("a wrapper") from exc
    except RuntimeError as outer:
        assert is_unavailable(outer)  # found down the cause chain


def test_faults_of_the_request_or_the_code_are_not() -> None:
    assert not is_unavailable(_wrapped(sqlite3.OperationalError("no such table: events")))
    assert not is_unavailable(IntegrityError("INSERT ...", None, ValueError("duplicate key")))
    assert not is_unavailable(ValueError("bad"))
    assert not is_unavailable(_wrapped(pg.UndefinedTableError("relation does not exist")))
