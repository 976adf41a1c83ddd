"""The delivery log: appended in batches, read per event."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from txmsg.core.delivery import FIRST_OF_KIND, Interaction, LogEntry
from txmsg.core.reports import counts_unique
from txmsg.store import report_counts
from txmsg.store import webhook_outbox as outbox
from txmsg.store.dialect_insert import insert_into
from txmsg.store.tables import delivery_log, events


def _insert_once(dialect: str) -> Any:
    insert = insert_into(dialect, delivery_log)
    return insert.on_conflict_do_nothing().returning(
        delivery_log.c.pkey, delivery_log.c.kind, delivery_log.c.once_key
    )


# Entries recorded once: the unique index (pkey, kind, once_key) drops a duplicate, even one
# another process is inserting at the same moment (it waits for that one's commit).
_INSERT_ONCE = {name: _insert_once(name) for name in ("sqlite", "postgresql")}


def _row(e: LogEntry) -> dict[str, Any]:
    return {
        "pkey": e.pkey,
        "event_id": e.event_id,
        "kind": e.kind.value,
        "at": e.at,
        "detail": e.detail,
        "once_key": e.once,
    }


def _key(e: LogEntry) -> tuple[str, str, str | None]:
    return (e.pkey, e.kind.value, e.once)


def _with_firsts(entries: list[LogEntry]) -> list[LogEntry]:
    """A person's open or click, the first of its message and kind in this batch, is tried
    as the message's first (FIRST_OF_KIND): the unique index tells whether it is."""
    marked: set[tuple[str, str]] = set()
    out: list[LogEntry] = []
    for e in entries:
        first = (e.pkey, e.kind.value)
        if e.once is None and counts_unique(e.kind.value, e.detail) and first not in marked:
            marked.add(first)
            e = replace(e, once=FIRST_OF_KIND)
        out.append(e)
    return out


def append_in(
    conn: Connection, entries: list[LogEntry], now: datetime | None = None
) -> list[LogEntry]:
    """Append entries with their report counts and webhook calls (due at `now`, the
    database's time); return those appended.

    An entry with a `once` key already recorded (here or by a concurrent writer) is dropped;
    a person's open or click that was not the first stays, without the unique count.
    One executemany for the plain entries, one insert for the keyed ones."""
    if not entries:
        return []
    keyed: dict[tuple[str, str, str | None], LogEntry] = {}
    plain: list[LogEntry] = []
    for e in _with_firsts(entries):
        if e.once is None:
            plain.append(e)
        else:
            keyed.setdefault(_key(e), e)  # a duplicate within the batch is one too
    appended: list[LogEntry] = []
    if keyed:
        # In key order: two processes appending the same entries (a callback retried to both)
        # take the unique index's entries in one order, so one waits instead of deadlocking.
        ordered = [keyed[k] for k in sorted(keyed)]
        rows = conn.execute(_INSERT_ONCE[conn.dialect.name], [_row(e) for e in ordered])
        inserted = {(r.pkey, r.kind, r.once_key) for r in rows}
        for key, e in keyed.items():
            if key in inserted:
                appended.append(e)
            elif e.once == FIRST_OF_KIND:
                plain.append(replace(e, once=None))  # not the first: an open all the same
    if plain:
        conn.execute(sa.insert(delivery_log), [_row(e) for e in plain])
    appended += plain
    versions, hooked = _messages_of(conn, appended)
    report_counts.add(conn, report_counts.of_entries(appended, versions))
    outbox.queue_interactions(conn, [e for e in appended if e.event_id in hooked], now)
    return appended


def _messages_of(
    conn: Connection, entries: list[LogEntry]
) -> tuple[dict[str, int | None], set[str]]:
    """The template version of each entry's message (by PKey), and the events among them
    that have a webhook: one query per batch."""
    versions: dict[str, int | None] = {}
    hooked: set[str] = set()
    rows = conn.execute(
        sa.select(
            events.c.pkey, events.c.event_id, events.c.message_version, outbox.HAS_WEBHOOK
        ).where(events.c.pkey.in_(list({e.pkey for e in entries})))
    )
    for row in rows:
        versions[row.pkey] = row.message_version
        if row.hooked:
            hooked.add(row.event_id)
    return versions, hooked


def for_event(conn: Connection, pkey: str) -> list[LogEntry]:
    """The entries of one event's message, oldest first."""
    rows = conn.execute(
        sa.select(delivery_log)
        .where(delivery_log.c.pkey == pkey)
        .order_by(delivery_log.c.at, delivery_log.c.id)
    )
    return [LogEntry(r.pkey, r.event_id, Interaction(r.kind), r.at, r.detail) for r in rows]
