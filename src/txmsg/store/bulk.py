"""Lean SQL for the hot statements: named once, compiled once per engine and row count.

SQLAlchemy builds and processes every row's parameters in Python, about 40 us a row for the
queue's 14-column insert, three times SQLite's own work for it; on SQLite that cost runs on the
writer thread, holding the GIL against the event loop. A `RowStatement` is compiled once per
dialect and row count and keeps its text; each row becomes the driver's tuple with one C-level
item lookup plus the type processors of the columns that have one.

On SQLite the rows of a batch go as one statement (a multi-row INSERT, or an UPDATE joined to
a VALUES table), 64 rows at most: the driver releases the GIL around every row's step of an
executemany, and the writer thread must win it back from a busy event loop each time. One
statement is one wait. Elsewhere (asyncpg) one executemany: the driver pipelines it.

A `Read` hands its rows over in one step on SQLite for the same reason (`json_group_array`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from operator import itemgetter
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.sql import Select
from sqlalchemy.sql.dml import UpdateBase

# SQLite's default limit on a statement's parameters (SQLITE_MAX_VARIABLE_NUMBER since 3.32).
SQLITE_MAX_PARAMETERS = 32_766
# Each row count is its own SQL text, prepared once and kept in the driver's statement cache
# (`Database` sizes it): batches go in chunks of this many rows, so a statement has at most
# this many texts.
MAX_ROWS_PER_STATEMENT = 64

# A row's columns as a statement reads them: bound parameters, or a VALUES table's columns.
Source = Mapping[str, sa.ColumnElement[Any]]
# A row: its values by column key, or a tuple of them in the order the statement declares
# its columns (the cheaper form, for the hottest statements).
Row = Mapping[str, Any] | tuple[Any, ...]


def _cell(key: str, row: int) -> str:
    """The parameter name of column `key` in row `row` of a many-row statement."""
    return f"{key}__{row}"


class RowStatement(ABC):
    """A statement applied to each row of a batch: named once, its row's columns declared once.

    Both forms are built from the one declaration: `for_each_row()` (parameters named by the
    columns' keys, run as an executemany) and, where the statement allows it, `for_rows(n)`
    (n rows in one statement, SQLite's form). Parameters that are not a row's (one value for
    the whole batch, such as the time) are named bind parameters given to `execute`.
    """

    # Whether `for_rows` gives a statement (SQLite then takes a batch's rows 64 at a time).
    many = False

    def __init__(self, name: str, columns: Sequence[sa.ColumnClause[Any]]) -> None:
        self.name = name
        self.columns = tuple(columns)
        self.keys = tuple(c.key for c in self.columns)
        self.rows_per_statement = min(
            MAX_ROWS_PER_STATEMENT, SQLITE_MAX_PARAMETERS // max(1, len(self.columns))
        )
        self._each: dict[str, _EachRow] = {}
        self._many: dict[tuple[str, int], _ManyRows] = {}

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"

    def each_row_source(self) -> Source:
        return {c.key: sa.bindparam(c.key, type_=c.type) for c in self.columns}

    def rows_source(self, count: int) -> list[Source]:
        return [
            {c.key: sa.bindparam(_cell(c.key, i), type_=c.type) for c in self.columns}
            for i in range(count)
        ]

    @abstractmethod
    def for_each_row(self) -> UpdateBase:
        """The statement for one row, its parameters named by the columns' keys."""

    def for_rows(self, count: int) -> UpdateBase | None:
        """The statement for `count` rows at once; None when it takes one row at a time."""
        return None

    def each_row(self, dialect: Dialect) -> _EachRow:
        plan = self._each.get(dialect.name)
        if plan is None:
            plan = self._each[dialect.name] = _EachRow(self, dialect)
        return plan

    def many_rows(self, dialect: Dialect, count: int) -> _ManyRows:
        plan = self._many.get((dialect.name, count))
        if plan is None:
            stmt = self.for_rows(count)
            if stmt is None:
                raise TypeError(f"{self.name} takes one row at a time")
            plan = self._many[(dialect.name, count)] = _ManyRows(self, stmt, dialect, count)
        return plan


class InsertRows(RowStatement):
    """INSERT of rows into `table`; many rows as one multi-row VALUES on SQLite."""

    many = True

    def __init__(self, name: str, table: sa.Table, keys: Sequence[str]) -> None:
        super().__init__(name, [sa.column(k, table.c[k].type) for k in keys])
        self.table = table

    def for_each_row(self) -> UpdateBase:
        return sa.insert(self.table).values(self.each_row_source())

    def for_rows(self, count: int) -> UpdateBase:
        return sa.insert(self.table).values(self.rows_source(count))


class UpdateRows(RowStatement):
    """An UPDATE built by `build` from a row's columns; on SQLite, with `joined`, many rows
    as one `WITH v(...) AS (VALUES ...) UPDATE ... FROM v` (SQLite >= 3.33, PostgreSQL)."""

    def __init__(
        self,
        name: str,
        columns: Sequence[sa.ColumnClause[Any]],
        build: Callable[[Source], sa.Update],
        *,
        joined: bool,
    ) -> None:
        super().__init__(name, columns)
        self.build = build
        self.many = joined

    def for_each_row(self) -> UpdateBase:
        return self.build(self.each_row_source())

    def for_rows(self, count: int) -> UpdateBase | None:
        if not self.many:
            return None
        rows = [tuple(row.values()) for row in self.rows_source(count)]
        table = sa.values(*self.columns, name="v").data(rows).cte("v")
        return self.build({c.key: c for c in table.c})


class _EachRow:
    """A statement's one-row text for one dialect: each row becomes the driver's tuple."""

    __slots__ = ("fixed", "get", "processors", "sql")

    def __init__(self, statement: RowStatement, dialect: Dialect) -> None:
        compiled = statement.for_each_row().compile(dialect=dialect, for_executemany=True)
        if compiled.positiontup is None:
            raise ValueError(f"{dialect.name} does not use positional parameters")
        self.sql = compiled.string
        binds = [compiled.binds[name] for name in compiled.positiontup]
        # Parameters that are not a row's: fixed in the statement, or given to `execute`.
        self.fixed = {
            b.key: b.effective_value
            for b in binds
            if b.key not in statement.keys and not b.required
        }
        self.processors = _processors(binds, dialect)
        self.get = _getter([b.key for b in binds])

    def params(self, row: Mapping[str, Any]) -> tuple[Any, ...]:
        values = self.get(row)
        if not self.processors:
            return tuple(values)
        out = list(values)
        for i, processor in self.processors:
            out[i] = processor(out[i])
        return tuple(out)


class _ManyRows:
    """A statement's text for `count` rows at once, for one dialect."""

    __slots__ = ("count", "extras", "get", "processors", "sql", "width")

    def __init__(
        self, statement: RowStatement, stmt: UpdateBase, dialect: Dialect, count: int
    ) -> None:
        compiled = stmt.compile(dialect=dialect)
        if compiled.positiontup is None:
            raise ValueError(f"{dialect.name} does not use positional parameters")
        self.sql = compiled.string
        self.count = count
        self.width = len(statement.keys)
        cells = {
            _cell(key, i): i * self.width + j
            for i in range(count)
            for j, key in enumerate(statement.keys)
        }
        # The text names the rows' values first (row after row: a multi-row VALUES, or the
        # VALUES table an UPDATE is joined to comes first), then the other parameters.
        self.extras: list[tuple[str, bool, Any]] = []
        order: list[int] = []
        first_row: dict[str, Any] = {}
        for name in compiled.positiontup:
            bind = compiled.binds[name]
            index = cells.get(bind.key)
            if index is None:
                order.append(len(cells) + len(self.extras))
                self.extras.append((bind.key, bind.required, bind.effective_value))
                continue
            order.append(index)
            if index < self.width:
                first_row[statement.keys[index]] = bind
        if sorted(order) != list(range(len(order))):
            raise ValueError(f"{statement.name}: a row's column is missing from its statement")
        if order != sorted(order):
            raise ValueError(f"{statement.name}: a parameter comes before the rows' values")
        self.processors = _processors([first_row[k] for k in statement.keys], dialect)
        self.get = _getter(statement.keys)

    def params(self, rows: Sequence[Row], shared: Mapping[str, Any]) -> tuple[Any, ...]:
        flat: list[Any] = []
        processors = self.processors
        for row in rows:
            values = row if isinstance(row, tuple) else self.get(row)
            if processors:
                values = list(values)
                for i, processor in processors:
                    values[i] = processor(values[i])
            flat += values
        for key, required, fixed in self.extras:
            flat.append(shared[key] if required else shared.get(key, fixed))
        return tuple(flat)


def _getter(keys: Sequence[str]) -> Callable[[Mapping[str, Any]], Any]:
    """A row's values at `keys`, as a tuple (one C-level lookup)."""
    getter = itemgetter(*keys)
    return getter if len(keys) > 1 else lambda row: (getter(row),)


def _processors(binds: Sequence[Any], dialect: Dialect) -> list[tuple[int, Callable[[Any], Any]]]:
    out = []
    for i, bind in enumerate(binds):
        processor = bind.type.dialect_impl(dialect).bind_processor(dialect)
        if processor is not None:
            out.append((i, processor))
    return out


def execute(conn: Connection, statement: RowStatement, rows: Sequence[Row], **shared: Any) -> None:
    """Apply `statement` to every row: all mappings of the declared columns' keys, or all
    sequences of their values in the declared order.

    `shared` gives the statement's other parameters, one value for the whole batch.
    """
    if not rows:
        return
    dialect = conn.dialect
    if dialect.name == "sqlite" and statement.many:
        per = statement.rows_per_statement
        for start in range(0, len(rows), per):
            chunk = rows[start : start + per]
            many = statement.many_rows(dialect, len(chunk))
            conn.exec_driver_sql(many.sql, many.params(chunk, shared))
        return
    each = statement.each_row(dialect)
    base = {**each.fixed, **shared}
    keys = statement.keys
    named = [dict(zip(keys, row, strict=True)) if isinstance(row, tuple) else row for row in rows]
    if base:
        named = [{**base, **row} for row in named]
    conn.exec_driver_sql(each.sql, [each.params(row) for row in named])


class Read:
    """A SELECT, named once, whose rows SQLite hands over in one step.

    The driver steps once a row and releases the GIL around each step (see above): SQLite
    folds the rows into one JSON array instead (`json_group_array`), decoded here in one call;
    each value then goes through its column's own result processing (date-times, JSON), so
    rows come back alike on both engines: sequences in the order of the selected columns.
    `build(dialect name)` gives the statement (PostgreSQL may lock what SQLite need not).
    """

    def __init__(self, name: str, build: Callable[[str], Select[Any]]) -> None:
        self.name = name
        self.build = build
        self._built: dict[str, _Folded | Select[Any]] = {}

    def __repr__(self) -> str:
        return f"<Read {self.name!r}>"

    def rows(self, conn: Connection, params: Mapping[str, Any]) -> Sequence[Sequence[Any]]:
        dialect = conn.dialect
        built = self._built.get(dialect.name)
        if built is None:
            stmt = self.build(dialect.name)
            built = self._built[dialect.name] = (
                _Folded(stmt, dialect) if dialect.name == "sqlite" else stmt
            )
        if isinstance(built, _Folded):
            return built.rows(conn, params)
        return list(conn.execute(built, params))


class _Folded:
    __slots__ = ("processors", "select")

    def __init__(self, stmt: Select[Any], dialect: Dialect) -> None:
        inner = stmt.subquery()
        self.select = sa.select(sa.func.json_group_array(sa.func.json_array(*inner.c)))
        self.processors = []
        for i, column in enumerate(stmt.selected_columns):
            processor = column.type.dialect_impl(dialect).result_processor(dialect, None)
            if processor is not None:
                self.processors.append((i, processor))

    def rows(self, conn: Connection, params: Mapping[str, Any]) -> Sequence[Sequence[Any]]:
        text = conn.execute(self.select, params).scalar_one()
        rows: list[list[Any]] = orjson.loads(text)
        if self.processors:
            for values in rows:
                for i, processor in self.processors:
                    values[i] = processor(values[i])
        return rows
