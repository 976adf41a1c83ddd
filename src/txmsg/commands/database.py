"""The database of a command other than `serve` and `migrate`: an existing one, never a new one.

With the default SQLite location (`TXMSG_DATA_DIR`, relative to the working directory) a
command run from another folder would otherwise create an empty database there and act on it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from txmsg.config import Settings

if TYPE_CHECKING:
    from txmsg.store.db import Database


# The exit status of a command that cannot start: `serve` and `worker` (uvicorn's status for
# serve's processes), and every command whose database cannot be used (NoDatabase).
STARTUP_FAILURE = 3


class NoDatabase(Exception):
    """The command has no usable database (none yet, unreachable, not at this release's schema);
    the message says where it looked and what to do. The command exits STARTUP_FAILURE."""


def sqlite_path(url: str) -> Path | None:
    """The file of a SQLite URL (None for PostgreSQL or an in-memory database)."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database).resolve()


def missing_message(settings: Settings, path: Path) -> str:
    where = (
        "TXMSG_DATABASE_URL"
        if settings.database_url
        else f"TXMSG_DATA_DIR (now {str(settings.data_dir)!r}, relative to the working directory)"
    )
    return (
        f"no database at {path}: run this command where `txmsg serve` runs, or set {where} "
        "to its location (`txmsg migrate` creates a new one)"
    )


async def open_existing(settings: Settings) -> Database:
    """The settings' database, at the latest schema; NoDatabase (nothing created) otherwise."""
    # Here, not at the top: the CLI imports this module for every command, --help included.
    from txmsg.engine.database import open_database, unlock_secrets
    from txmsg.store.readiness import schema_state
    from txmsg.store.startup_errors import startup_problem

    url = settings.resolved_database_url
    path = sqlite_path(url)
    if path is not None and not path.is_file():
        raise NoDatabase(missing_message(settings, path))
    db = open_database(settings)
    try:
        state = await schema_state(db)
    except Exception as exc:
        await db.dispose()
        problem = startup_problem(exc, url, settings.data_dir)  # one line, when it has one
        raise NoDatabase(
            problem or f"the database cannot be read: {type(exc).__name__}: {exc}"
        ) from exc
    if state.is_newer:
        await db.dispose()
        raise NoDatabase(
            f"the database's schema is at revision {state.current}, of a newer release of txmsg "
            f"than this one (at {state.head}): run that release, or restore the database's backup"
        )
    if not state.is_current:
        await db.dispose()
        raise NoDatabase(
            f"the database's schema is at revision {state.current or 'none'}, not the latest "
            f"({state.head}): run `txmsg migrate` first"
        )
    try:
        await unlock_secrets(db, settings)  # a database sealed with a key not here: refused
    except BaseException:
        await db.dispose()
        raise
    return db
