"""Alembic migrations, run programmatically at start-up and by `txmsg migrate`.

Alembic (with Mako) takes about 0.1 s to import, and nearly every start finds the schema at
head already: a start reads the database's revision with one query and imports
Alembic only when there is something to upgrade. `HEAD` names the newest migration; a test
checks it against Alembic's own reading of `versions/`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.engine import Connection

if TYPE_CHECKING:
    from alembic.config import Config

HERE = Path(__file__).parent

# The newest migration's revision id: what a current schema is at. A new migration updates it
# (tests/store/test_schema.py says so when it is stale).
HEAD = "0029"

# Any constant: processes starting together on one PostgreSQL database migrate one at a time.
_MIGRATION_LOCK = 7_270_001


def alembic_config(connection: Connection | None = None) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(HERE))
    cfg.attributes["connection"] = connection
    return cfg


def upgrade_to_head(connection: Connection) -> None:
    """Upgrade the schema to `HEAD`, in the caller's transaction; nothing when it is there."""
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_MIGRATION_LOCK})")
    elif not connection.connection.dbapi_connection.in_transaction:  # type: ignore[union-attr]
        # SQLite: take the write lock now (the driver would not open a transaction before
        # DDL); another process waits here, then finds the schema at head.
        connection.exec_driver_sql("BEGIN IMMEDIATE")
    if current_revision(connection) == HEAD:  # under the lock: no other process upgrades now
        return
    from alembic import command

    command.upgrade(alembic_config(connection), "head")


def head_revision() -> str:
    """The newest migration's revision id (what a current schema is at)."""
    return HEAD


def is_known(revision: str) -> bool:
    """Whether this release has the migration `revision` (a newer release's is unknown)."""
    return revision.isalnum() and any((HERE / "versions").glob(f"{revision}_*.py"))


def current_revision(connection: Connection) -> str | None:
    """The database's schema revision; None for a database never migrated."""
    if not sa.inspect(connection).has_table("alembic_version"):
        return None
    versions = connection.exec_driver_sql("SELECT version_num FROM alembic_version").scalars()
    found = list(versions)
    return found[0] if len(found) == 1 else None
