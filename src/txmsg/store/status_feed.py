"""What a status change or a delivery-log entry sets off, in the transaction that records it.

Two consumers, both written here so that no producer has to know about them:
- the day aggregates of the reports (report_days), one upsert per batch;
- the status-webhook outbox, for events whose configuration names a webhook.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from txmsg.core.delivery import LogEntry
from txmsg.core.queue import Outcome
from txmsg.core.reports import (
    NO_VERSION,
    STATUS_METRICS,
    UNIQUE_KINDS,
    CountKey,
    StatusChange,
    count_statuses,
    counts_unique,
    interaction_metric,
)
from txmsg.core.timeutil import utcnow
from txmsg.store import bulk
from txmsg.store.bulk import executemany
from txmsg.store.reports import add_counts_in
from txmsg.store.tables import (
    BY_PEOPLE,
    delivery_log,
    event_webhooks,
    events,
    webhook_outbox,
)

# Events joined with their webhook, if any: one query tells both.
_WITH_WEBHOOK = events.outerjoin(event_webhooks, event_webhooks.c.event_id == events.c.event_id)
_HOOKED = event_webhooks.c.event_id.is_not(None).label("hooked")


# In the RETURNING clause of an UPDATE of events: whether the row's event configuration has a
# webhook, in the same statement (no query of its own).
HAS_WEBHOOK = (
    sa.exists()
    .where(event_webhooks.c.event_id == events.c.event_id)
    .correlate(events)
    .label("hooked")
)
_RETURNED = (events.c.pkey, events.c.event_id, events.c.message_version, HAS_WEBHOOK)


def statuses_changed_in(conn: Connection, changes: list[StatusChange]) -> None:
    """Count `changes` and queue their webhooks."""
    if not changes:
        return
    add_counts_in(conn, count_statuses(changes))
    hooked = _with_webhook(conn, {c.event_id for c in changes})
    announce_in(conn, [c for c in changes if c.event_id in hooked])


def set_status_in(
    conn: Connection,
    stmt: sa.Update,
    status: str,
    at: datetime,
    reason: str | None = None,
    *,
    hooked: bool | None = None,
) -> int:
    """Run `stmt`, an UPDATE of events to `status` that no report counts (pending, paused,
    processing), and announce the rows it changed whose event has a webhook. Returns the
    number of rows changed.

    `hooked` known (the statement touches one event): rows come back only when it is True, so
    pausing a million queued events of an event without a webhook holds none of them in
    memory. Unknown: every changed row comes back, flagged in the same statement.
    """
    if hooked is False:
        return int(conn.execute(stmt).rowcount)
    rows = conn.execute(stmt.returning(*_RETURNED)).all()
    announce_in(
        conn,
        [StatusChange(r[0], r[1], status, at, r[2], reason) for r in rows if r[3]],
    )
    return len(rows)


def has_webhook(conn: Connection, event_id: str) -> bool:
    return bool(_with_webhook(conn, {event_id}))


def announce_in(conn: Connection, changes: list[StatusChange]) -> None:
    """Queue the webhook calls of `changes`, whose events are known to have a webhook."""
    if changes:
        _queue_webhooks(
            conn,
            [
                {
                    "event_id": c.event_id,
                    "pkey": c.pkey,
                    "status": c.status,
                    "interaction": None,
                    "at": c.at,
                    "reason": c.reason,
                    "detail": None,
                }
                for c in changes
            ],
        )


def _pick(dialect: str) -> Any:
    stmt = (
        sa.select(events.c.id, events.c.pkey, events.c.event_id, events.c.lease_token, _HOOKED)
        .select_from(_WITH_WEBHOOK)
        .where(events.c.id.in_(sa.bindparam("ids", expanding=True)))
    )
    return stmt if dialect == "sqlite" else stmt.with_for_update(of=events)


# Built once: the write funnel runs this for every batch of outcomes.
_PICKS = {name: _pick(name) for name in ("sqlite", "postgresql")}


def outcomes_recorded_in(conn: Connection, outcomes: list[Outcome], now: datetime) -> None:
    """Before the write funnel applies `outcomes`: count and announce the ones it will apply.

    An outcome applies only while its lease token still holds (a stale one changes nothing),
    so the rows are read, and on PostgreSQL locked, first: one query per batch.
    """
    if not outcomes:
        return
    rows = bulk.rows_at_once(conn, _PICKS[conn.dialect.name], {"ids": [o.id for o in outcomes]})
    held = {r[0]: r for r in rows}
    counts: Counter[CountKey] = Counter()
    announced: list[StatusChange] = []
    for o in outcomes:
        row = held.get(o.id)
        if row is None or row[3] != o.lease_token:
            continue
        at = o.sent_at or now
        metric = STATUS_METRICS.get(o.status)
        if metric is not None:
            counts[(row[2], at.date(), o.message_version or NO_VERSION, metric)] += 1
        if o.delivered:
            counts[(row[2], at.date(), o.message_version or NO_VERSION, "delivered")] += 1
        if row[4]:
            announced.append(
                StatusChange(row[1], row[2], o.status.value, at, o.message_version, o.reason)
            )
    add_counts_in(conn, counts)
    announce_in(conn, announced)


def changes_from_rows(
    rows: Any, status: str, at: datetime, reason: str | None
) -> list[StatusChange]:
    """StatusChanges from `UPDATE ... RETURNING pkey, event_id, message_version` rows."""
    return [StatusChange(r.pkey, r.event_id, status, at, r.message_version, reason) for r in rows]


def entries_appended_in(conn: Connection, entries: list[LogEntry]) -> None:
    """Before delivery-log `entries` are inserted: count them and queue their webhooks.

    Unique opens and clicks count a message's first human entry of that kind (machine ones
    are counted apart): one query per batch finds the messages that already have one.
    """
    if not entries:
        return
    pkeys = list({e.pkey for e in entries})
    versions: dict[str, int | None] = {}
    hooked: set[str] = set()
    for row in conn.execute(
        sa.select(events.c.pkey, events.c.event_id, events.c.message_version, _HOOKED)
        .select_from(_WITH_WEBHOOK)
        .where(events.c.pkey.in_(pkeys))
    ):
        versions[row.pkey] = row.message_version
        if row.hooked:
            hooked.add(row.event_id)
    seen: set[tuple[str, str]] = set()
    if any(counts_unique(e.kind.value, e.detail) for e in entries):
        seen = {
            (r.pkey, r.kind)
            for r in conn.execute(
                sa.select(delivery_log.c.pkey, delivery_log.c.kind)
                .where(
                    delivery_log.c.pkey.in_(pkeys),
                    delivery_log.c.kind.in_(UNIQUE_KINDS),
                    BY_PEOPLE,
                )
                .distinct()
            )
        }
    counts: Counter[CountKey] = Counter()
    for e in entries:
        metric = interaction_metric(e.kind.value, e.detail)
        if metric is None:
            continue
        version = versions.get(e.pkey) or NO_VERSION
        counts[(e.event_id, e.at.date(), version, metric)] += 1
        if counts_unique(e.kind.value, e.detail) and (e.pkey, e.kind.value) not in seen:
            seen.add((e.pkey, e.kind.value))
            counts[(e.event_id, e.at.date(), version, metric + "_unique")] += 1
    add_counts_in(conn, counts)
    if hooked:
        _queue_webhooks(
            conn,
            [
                {
                    "event_id": e.event_id,
                    "pkey": e.pkey,
                    "status": None,
                    "interaction": e.kind.value,
                    "at": e.at,
                    "reason": None,
                    "detail": e.detail,
                }
                for e in entries
                if e.event_id in hooked
            ],
        )


def _with_webhook(conn: Connection, event_ids: set[str]) -> set[str]:
    return set(
        conn.execute(
            sa.select(event_webhooks.c.event_id).where(event_webhooks.c.event_id.in_(event_ids))
        ).scalars()
    )


_OUTBOX_INSERT = sa.insert(webhook_outbox)


def _queue_webhooks(conn: Connection, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    now = utcnow()
    for row in rows:
        row.update(created_at=now, due_at=now, attempts=0, last_error=None)
    # On the trigger's write for events with a webhook: the queue's lean executemany.
    executemany(conn, _OUTBOX_INSERT, rows)
