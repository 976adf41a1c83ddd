"""Rate-limit counters shared by every process on one database: take tokens atomically.

One row per scope holds its current window and the tokens taken in it. A take is one
`INSERT ... ON CONFLICT (scope) DO UPDATE ... RETURNING` for any number of scopes: the row is
locked and updated from its latest committed value (never read, then written), so two
processes taking from one scope at once never get more than its cap between them. Every SET
expression sees the row as it was before the statement, so `granted` and `used` are computed
from the same `used`. A window later than the stored one starts afresh; an earlier one (a
process whose clock is behind) counts against the stored window.

Tokens taken and not spent may be given back in the same transaction (`give_back_in`).
Channel caps (store/queue/capped.py) and API keys' buckets (api/limits.py) both count here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Dialect

from txmsg.core.rate_limit import Window
from txmsg.store.tables import rate_windows


@dataclass(frozen=True, slots=True)
class Take:
    """Up to `want` tokens of `window`, in the window holding `now_ms`."""

    window: Window
    want: int
    now_ms: int


@dataclass(frozen=True, slots=True)
class Granted:
    """What a take got: `tokens` (0 to its want) of the window starting at `window_start`."""

    tokens: int
    window_start: int


def _least(a: sa.ColumnElement[int], b: sa.ColumnElement[int]) -> sa.ColumnElement[int]:
    return sa.case((a < b, a), else_=b)


def _take(dialect: str) -> sa.Insert:
    insert = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(rate_windows)
    new = insert.excluded
    row = rate_windows.c
    fresh = new.window_start > row.window_start
    # The row's `granted`: what is left of the cap, at most what was asked (the insert's
    # `granted`, already bounded by the cap), never below 0 (a cap lowered mid-window).
    left = _least(new.granted, new.cap - row.used)
    continuing = sa.case((left > 0, left), else_=sa.literal(0, sa.BigInteger()))
    grant = sa.case((fresh, new.granted), else_=continuing)
    return insert.on_conflict_do_update(
        index_elements=[row.scope],
        set_={
            "granted": grant,
            "used": sa.case((fresh, new.used), else_=row.used + continuing),
            "window_start": sa.case((fresh, new.window_start), else_=row.window_start),
            "cap": new.cap,
        },
    ).returning(row.scope, row.granted, row.window_start)


_COLUMNS = ("scope", "window_start", "cap", "used", "granted")


@dataclass(frozen=True, slots=True)
class _Compiled:
    sql: str
    # Each parameter in the text's order: a row's value (row, column index), or a constant of
    # the statement (None, value).
    order: tuple[tuple[int | None, Any], ...]


# Compiled once per dialect and number of scopes: SQLAlchemy compiles a multi-row INSERT
# again at every execution (about 1 ms of CPU), and a channel cap takes tokens at every
# claim, a key's bucket at every lease.
_COMPILED: dict[tuple[str, int], _Compiled] = {}


def _compiled(dialect: Dialect, count: int) -> _Compiled:
    found = _COMPILED.get((dialect.name, count))
    if found is None:
        rows = [
            {c: sa.bindparam(f"{c}__{i}", type_=rate_windows.c[c].type) for c in _COLUMNS}
            for i in range(count)
        ]
        compiled = _take(dialect.name).values(rows).compile(dialect=dialect)
        if compiled.positiontup is None:
            raise ValueError(f"{dialect.name} does not use positional parameters")
        cells = {f"{c}__{i}": (i, j) for i in range(count) for j, c in enumerate(_COLUMNS)}
        order: list[tuple[int | None, Any]] = []
        for name in compiled.positiontup:
            bind = compiled.binds[name]
            order.append(cells.get(bind.key) or (None, bind.effective_value))
        found = _COMPILED[(dialect.name, count)] = _Compiled(compiled.string, tuple(order))
    return found


def take_in(conn: Connection, takes: Sequence[Take]) -> dict[str, Granted]:
    """Take tokens for every scope of `takes` (one scope at most once), in one statement."""
    if not takes:
        return {}
    rows = []
    for take in takes:
        first = min(take.want, take.window.cap)
        window = take.window
        rows.append((window.scope, window.start(take.now_ms), window.cap, first, first))
    compiled = _compiled(conn.dialect, len(rows))
    params = tuple(value if r is None else rows[r][value] for r, value in compiled.order)
    result = conn.exec_driver_sql(compiled.sql, params)
    return {r.scope: Granted(int(r.granted), int(r.window_start)) for r in result}


def give_back_in(conn: Connection, returns: Sequence[tuple[str, int, int]]) -> None:
    """Return unspent tokens: (scope, window start they were taken in, count)."""
    params = [{"b_scope": s, "b_start": w, "b_count": n} for s, w, n in returns if n > 0]
    if params:
        conn.execute(_GIVE_BACK, params)


_GIVE_BACK = (
    sa.update(rate_windows)
    .where(
        rate_windows.c.scope == sa.bindparam("b_scope"),
        rate_windows.c.window_start == sa.bindparam("b_start"),
    )
    .values(used=rate_windows.c.used - sa.bindparam("b_count", type_=sa.BigInteger()))
)


def read_in(conn: Connection, scopes: Sequence[str]) -> dict[str, tuple[int, int]]:
    """(window start, tokens used) of each of these counters that exists: a plain read, for
    showing a cap's use (the takes above never read before they write)."""
    if not scopes:
        return {}
    c = rate_windows.c
    query = sa.select(c.scope, c.window_start, c.used).where(c.scope.in_(scopes))
    return {r.scope: (int(r.window_start), int(r.used)) for r in conn.execute(query)}
