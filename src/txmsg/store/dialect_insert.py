"""INSERT ... ON CONFLICT for the engine at hand: SQLite's and PostgreSQL's statements are
spelled alike but built by each dialect's own `insert`."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite


def insert_into(dialect: str, table: sa.Table) -> sqlite.Insert | postgresql.Insert:
    """An insert into `table` that takes `on_conflict_do_nothing` / `_do_update`."""
    return (sqlite.insert if dialect == "sqlite" else postgresql.insert)(table)
