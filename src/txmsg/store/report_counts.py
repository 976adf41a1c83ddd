"""The reports' day counts (report_days), added in the transaction of what they count.

Counted when things happen (status changes, delivery-log entries), never recomputed from
detailed rows: they survive the interaction-data lifecycle. Callers count, then `add`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Connection

from txmsg.core.delivery import FIRST_OF_KIND, LogEntry
from txmsg.core.queue import Outcome
from txmsg.core.reports import (
    NO_VERSION,
    STATUS_METRICS,
    CountKey,
    StatusChange,
    count_statuses,
    interaction_metric,
)
from txmsg.store.dialect_insert import insert_into
from txmsg.store.tables import report_days


def _upsert(dialect: str) -> Any:
    insert = insert_into(dialect, report_days)
    return insert.on_conflict_do_update(
        index_elements=["event_id", "day", "message_version", "metric"],
        set_={"count": report_days.c.count + insert.excluded["count"]},
    )


_ADD = {name: _upsert(name) for name in ("sqlite", "postgresql")}


def add(conn: Connection, counts: Counter[CountKey]) -> None:
    """Add `counts` to the aggregates: one executemany upsert for the whole batch.

    Rows go in key order: concurrent writers (PostgreSQL) lock the rows they share in the
    same order, so they wait for each other instead of deadlocking.
    """
    if not counts:
        return
    conn.execute(
        _ADD[conn.dialect.name],
        [
            {"event_id": e, "day": d, "message_version": v, "metric": m, "count": n}
            for (e, d, v, m), n in sorted(counts.items())
        ],
    )


def of_changes(changes: list[StatusChange]) -> Counter[CountKey]:
    """The counts of status changes: final statuses count."""
    return count_statuses(changes)


def of_outcomes(applied: Iterable[tuple[Outcome, str, datetime]]) -> Counter[CountKey]:
    """The counts of outcomes applied (outcome, its event, when): final statuses count, and a
    send whose provider's acceptance is the delivery (an SMTP 250) counts `delivered` too."""
    counts: Counter[CountKey] = Counter()
    for outcome, event_id, at in applied:
        version = outcome.message_version or NO_VERSION
        metric = STATUS_METRICS.get(outcome.status)
        if metric is not None:
            counts[(event_id, at.date(), version, metric)] += 1
        if outcome.delivered:
            counts[(event_id, at.date(), version, "delivered")] += 1
    return counts


def of_entries(entries: list[LogEntry], versions: Mapping[str, int | None]) -> Counter[CountKey]:
    """The counts of delivery-log `entries` appended (`versions`: each message's template
    version, by PKey).

    Unique opens and clicks count a message's first human entry of that kind (machine ones
    are counted apart): the entry appended as its message's first (FIRST_OF_KIND).
    """
    counts: Counter[CountKey] = Counter()
    for e in entries:
        metric = interaction_metric(e.kind.value, e.detail)
        if metric is None:
            continue
        version = versions.get(e.pkey) or NO_VERSION
        counts[(e.event_id, e.at.date(), version, metric)] += 1
        if e.once == FIRST_OF_KIND:
            counts[(e.event_id, e.at.date(), version, metric + "_unique")] += 1
    return counts
