"""Whether the database is reachable and its schema current (`/ready`, `txmsg check`)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.engine import Connection

from txmsg.store.db import Database
from txmsg.store.migrations import current_revision, head_revision, is_known


@dataclass(frozen=True, slots=True)
class SchemaState:
    current: str | None  # None: never migrated
    head: str | None

    @property
    def is_current(self) -> bool:
        return self.current == self.head

    @property
    def is_newer(self) -> bool:
        """Migrated by a newer release (a rollback): `txmsg migrate` cannot help."""
        return self.current is not None and not is_known(self.current)


def _schema(conn: Connection) -> str | None:
    return current_revision(conn)


async def schema_state(db: Database) -> SchemaState:
    """The database's revision beside the code's; raises when the database cannot be read."""
    return SchemaState(await db.read(_schema), head_revision())
