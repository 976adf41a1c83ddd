"""executemany without SQLAlchemy's per-row parameter machinery, for the queue's hot statements.

SQLAlchemy builds and processes every row's parameters in Python, about 40 us a row for the
queue's 14-column insert here, three times SQLite's own work for it; on SQLite that cost runs
on the writer thread, holding the GIL against the event loop. `executemany` compiles a
statement once per dialect and set of keys, then turns each row into the driver's tuple with
one C-level item lookup plus the type processors of the columns that have one.

On SQLite an INSERT of many rows goes as one multi-row `VALUES` statement. The driver releases
the GIL around every row's step and the writer thread must win it back from a busy event
loop each time: an executemany of 16 rows spent most of its time waiting for the GIL, not in
SQLite. One statement is one wait.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from operator import itemgetter
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.sql import Select
from sqlalchemy.sql.dml import Insert, UpdateBase

# SQLite's default limit on a statement's parameters (SQLITE_MAX_VARIABLE_NUMBER since 3.32).
SQLITE_MAX_PARAMETERS = 32_766
# Each row count is its own SQL text, prepared once and kept in the driver's statement cache
# (`Database` sizes it): batches go in chunks of this many rows, so a statement has at most
# this many texts.
MAX_ROWS_PER_STATEMENT = 64


class _Plan:
    """One statement compiled for one dialect and one set of row keys."""

    __slots__ = ("fixed", "get", "group", "head", "multi_row", "processors", "sql", "stmt", "width")

    def __init__(self, conn: Connection, stmt: UpdateBase, keys: tuple[str, ...]) -> None:
        dialect = conn.dialect
        compiled = stmt.compile(dialect=dialect, column_keys=list(keys))
        if compiled.positiontup is None:
            raise ValueError(f"{dialect.name} does not use positional parameters")
        self.stmt = stmt  # keeps the statement alive: its id stays unique in the cache
        self.sql = compiled.string
        names: list[str] = []
        # Parameters a row does not name take the value fixed in the statement.
        self.fixed: dict[str, Any] = {}
        self.processors: list[tuple[int, Callable[[Any], Any]]] = []
        for i, name in enumerate(compiled.positiontup):
            bind = compiled.binds[name]
            names.append(bind.key)
            if bind.key not in keys:
                self.fixed[bind.key] = bind.effective_value
            processor = bind.type.dialect_impl(dialect).bind_processor(dialect)
            if processor is not None:
                self.processors.append((i, processor))
        self.width = len(names)
        self.head, self.group = _values_parts(self.sql) if isinstance(stmt, Insert) else ("", "")
        self.multi_row: dict[int, str] = {}
        getter = itemgetter(*names)
        self.get: Callable[[Mapping[str, Any]], Any] = (
            getter if len(names) > 1 else lambda row: (getter(row),)
        )

    def params(self, row: Mapping[str, Any]) -> tuple[Any, ...]:
        values = self.get({**self.fixed, **row} if self.fixed else row)
        if not self.processors:
            return values  # type: ignore[no-any-return]
        out = list(values)
        for i, processor in self.processors:
            out[i] = processor(out[i])
        return tuple(out)

    def rows_per_statement(self) -> int:
        """0 when this statement cannot take several rows."""
        if not self.group or not self.width:
            return 0
        return min(MAX_ROWS_PER_STATEMENT, SQLITE_MAX_PARAMETERS // self.width)

    def values_sql(self, count: int) -> str:
        sql = self.multi_row.get(count)
        if sql is None:
            sql = self.multi_row[count] = self.head + ", ".join([self.group] * count)
        return sql


def _values_parts(sql: str) -> tuple[str, str]:
    """`INSERT ... VALUES (?, ?)` -> (`INSERT ... VALUES `, `(?, ?)`); ("", "") otherwise."""
    head, sep, group = sql.rpartition(" VALUES ")
    if not sep or not group.startswith("(") or not group.endswith(")") or ")" in group[:-1]:
        return "", ""  # RETURNING, ON CONFLICT, a default that is a function call: as it is
    return head + sep, group


_plans: dict[tuple[int, str, tuple[str, ...]], _Plan] = {}


def executemany(conn: Connection, stmt: UpdateBase, rows: Sequence[Mapping[str, Any]]) -> None:
    """`conn.execute(stmt, rows)`, for a module-level statement and rows with the same keys."""
    if not rows:
        return
    keys = tuple(rows[0])
    cache_key = (id(stmt), conn.dialect.name, keys)
    plan = _plans.get(cache_key)
    if plan is None:
        plan = _plans[cache_key] = _Plan(conn, stmt, keys)
    per_statement = plan.rows_per_statement() if conn.dialect.name == "sqlite" else 0
    if per_statement > 1 and len(rows) > 1:
        for start in range(0, len(rows), per_statement):
            chunk = rows[start : start + per_statement]
            flat = tuple([value for row in chunk for value in plan.params(row)])
            conn.exec_driver_sql(plan.values_sql(len(chunk)), flat)
        return
    conn.exec_driver_sql(plan.sql, [plan.params(row) for row in rows])


_at_once: dict[int, tuple[Select[Any], Select[Any]]] = {}


def rows_at_once(conn: Connection, stmt: Select[Any], params: Mapping[str, Any]) -> list[Any]:
    """All rows of `stmt`, as sequences in its column order, fetched in one step on SQLite.

    The driver steps once a row and releases the GIL around each step (see above): SQLite
    folds the rows into one JSON array instead (`json_group_array`), decoded here in one call.
    Values come back as JSON has them: JSON columns and date-times arrive as SQLite's text
    (decode the one, read the other with `datetime_reader`), booleans as 0 or 1.
    """
    if conn.dialect.name != "sqlite":
        return list(conn.execute(stmt, params).all())
    entry = _at_once.get(id(stmt))
    if entry is None:
        inner = stmt.subquery()
        folded = sa.select(sa.func.json_group_array(sa.func.json_array(*inner.c)))
        entry = _at_once[id(stmt)] = (stmt, folded)  # the statement kept: its id stays unique
    text = conn.execute(entry[1], params).scalar_one()
    return list(orjson.loads(text))


def datetime_reader(conn: Connection, column: sa.Column[Any]) -> Callable[[Any], Any]:
    """The column's own result processing, for date-times read by `rows_at_once`."""
    processor = column.type.dialect_impl(conn.dialect).result_processor(conn.dialect, None)
    return processor if processor is not None else (lambda value: value)
