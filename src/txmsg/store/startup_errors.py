"""Why a command could not start, in one line.

What an operator fixes in the settings or around the process (the database's address, name
or credentials, the data directory, the secret key, a port another process holds, a schema a
newer release migrated) is told as one line naming it, never a traceback; anything else is
a bug and keeps its traceback.
"""

from __future__ import annotations

import errno
import socket
import sqlite3
from pathlib import Path

from asyncpg import exceptions as pg
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from txmsg.store.outage import causes, is_unavailable
from txmsg.store.sealing import BadSecretKey, SealError


def address_of(url: str) -> str:
    """Where a database URL points, without its credentials."""
    return url.split("@")[-1]


def cannot_listen(where: str, exc: OSError) -> OSError:
    """`exc`, a refusal to listen (a port in use, a privileged one), naming what chose the
    address (`--port 127.0.0.1:8025`, `ops port ...`): `startup_problem` tells it in one line."""
    return OSError(exc.errno, f"{where}: {exc.strerror or exc}")


def startup_problem(exc: BaseException, database_url: str, data_dir: Path) -> str | None:
    """The one line that says why starting failed, or None for an error that is a bug."""
    from alembic.util.exc import CommandError  # here: alembic loads only to migrate

    where = address_of(database_url)
    for error in causes(exc):
        problem = _secret_or_file_problem(error, database_url)
        if problem is not None:
            return problem
        if isinstance(error, pg.InvalidCatalogNameError):
            return f"the database at {where} does not exist ({error}): create it, then migrate"
        # A role or password refused; a URL parameter PostgreSQL does not know (42704).
        refused = pg.InvalidAuthorizationSpecificationError | pg.UndefinedObjectError
        if isinstance(error, refused):
            return f"the database at {where} refused the connection: {error}"
        if isinstance(error, socket.gaierror):
            return f"the database host of TXMSG_DATABASE_URL ({where}) cannot be resolved: {error}"
        if isinstance(error, ArgumentError):
            return f"TXMSG_DATABASE_URL cannot be read: {error}"
        if isinstance(error, CommandError) and "Can't locate revision" in str(error):
            return (
                f"the database at {where} was migrated by a newer release of txmsg ({error}): "
                "run that release, or restore the database's backup"
            )
        if isinstance(error, OSError) and error.filename is not None:
            return (
                f"{error.filename}: {error.strerror or error} (the data directory, "
                f"TXMSG_DATA_DIR, is {str(data_dir)!r})"
            )
        if isinstance(error, OSError) and error.errno in _CANNOT_LISTEN:
            return f"cannot listen: {error.strerror or error}"  # names the port's option
    if is_unavailable(exc):
        return f"the database at {where} cannot be reached: {exc}"
    return None


# A port another process holds, one below 1024 without the right to it, an address that is not
# this machine's.
_CANNOT_LISTEN = (errno.EADDRINUSE, errno.EACCES, errno.EADDRNOTAVAIL)

# SQLite's words for a file that is no database, and for one it may not write (WAL needs the
# -wal and -shm files beside it: a directory it may not write is enough).
_NOT_A_DATABASE = ("file is not a database", "database disk image is malformed")
_NOT_WRITABLE = ("unable to open database file", "attempt to write a readonly database")


def _secret_or_file_problem(error: BaseException, database_url: str) -> str | None:
    if isinstance(error, BadSecretKey):
        return f"TXMSG_SECRET_KEY: {error}"
    if isinstance(error, SealError):
        return str(error)
    if isinstance(error, sqlite3.DatabaseError):
        return _sqlite_problem(error, database_url)
    return None


def _sqlite_problem(error: sqlite3.DatabaseError, database_url: str) -> str | None:
    """The SQLite file that cannot be used, and why; None for another error (a bug)."""
    text = str(error)
    try:
        path = Path(make_url(database_url).database or "")
    except ArgumentError:
        return None
    if text.startswith(_NOT_A_DATABASE):
        return (
            f"{path}: not a SQLite database, or a damaged one ({text}): restore it from a "
            "backup, or move it away and run `txmsg migrate` to create a new one"
        )
    if text.startswith(_NOT_WRITABLE):
        return (
            f"{path}: cannot be opened for writing ({text}): txmsg needs to write the file and "
            f"its directory {str(path.parent)!r} (SQLite keeps its -wal and -shm files there)"
        )
    return None
