"""Claims: due events leased to a dispatcher, highest priority first, in one statement.

`UPDATE ... WHERE id IN (SELECT ... ORDER BY priority, due_at LIMIT n)`, the sub-select with
`FOR UPDATE SKIP LOCKED` on PostgreSQL (SQLAlchemy renders nothing for it on SQLite, which has
one writer at a time anyway). A claim may lease at most `bulk_limit` bulk events (the lease
book keeps room for the transactional lane): then it is two statements, the transactional lane
first, then the bulk lane with what is left.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from txmsg.core.queue import PRIORITY_BULK, ClaimedEvent
from txmsg.core.reports import StatusChange
from txmsg.core.statuses import EventStatus
from txmsg.core.timeutil import utcnow
from txmsg.store import bulk
from txmsg.store.queue.rows import CLAIM_COLUMNS, HELD_BY_LEASE, ClaimRow, Lease
from txmsg.store.tables import events, status_in


@dataclass(frozen=True, slots=True)
class Claimed:
    """The events a claim leased (by id), and their `processing` to announce."""

    events: list[ClaimedEvent] = field(default_factory=list)
    announced: list[StatusChange] = field(default_factory=list)


def _claim(dialect: str, among: str | None = None, lane: str | None = None) -> sa.Update:
    """The claim; `among` "only"/"except" restricts it to (or keeps it from) the event types
    bound as `b_ids` (channel caps: store/queue/capped.py); `lane` "transactional"/"bulk" to
    one lane."""
    due = [status_in(EventStatus.PENDING), events.c.due_at <= sa.bindparam("b_now")]
    if lane == "transactional":
        due.append(events.c.priority < PRIORITY_BULK)
    elif lane == "bulk":
        due.append(events.c.priority >= PRIORITY_BULK)
    if among == "only":
        due.append(events.c.event_id.in_(sa.bindparam("b_ids", expanding=True)))
    elif among == "except":
        due.append(events.c.event_id.not_in(sa.bindparam("b_ids", expanding=True)))
    pick = (
        sa.select(events.c.id)
        .where(*due)
        .order_by(events.c.priority, events.c.due_at, events.c.id)
        .limit(sa.bindparam("b_limit"))
    )
    if dialect != "sqlite":
        pick = pick.with_for_update(skip_locked=True)
    claim = (
        sa.update(events)
        .where(events.c.id.in_(pick.scalar_subquery()))
        .values(
            status=EventStatus.PROCESSING.value,
            lease_until=sa.bindparam("b_until", type_=events.c.lease_until.type),
            lease_token=sa.bindparam("b_token"),
            attempts=events.c.attempts + 1,
            updated_at=sa.bindparam("b_now", type_=events.c.updated_at.type),
        )
    )
    # SQLite: RETURNING would step once a row (store/bulk.py); the claimed rows are read back
    # by their lease, all in one step, in the same transaction.
    if dialect == "sqlite":
        return claim
    return claim.returning(*CLAIM_COLUMNS)


# Built once: the dispatcher claims many times a second under load.
_CLAIM = {
    (name, among, lane): _claim(name, among, lane)
    for name in ("sqlite", "postgresql")
    for among in (None, "only", "except")
    for lane in (None, "transactional", "bulk")
}

# SQLite's read-back of the rows the claim leased, by their lease.
_CLAIMED = bulk.Read(
    "claimed events", lambda _dialect: sa.select(*CLAIM_COLUMNS).where(HELD_BY_LEASE)
)


def claim_in(
    conn: Connection,
    limit: int,
    lease: timedelta,
    now: datetime | None = None,
    *,
    only: frozenset[str] | None = None,
    exclude: frozenset[str] | None = None,
    bulk_limit: int | None = None,
) -> Claimed:
    """Lease up to `limit` due events for `lease`, highest priority first, at most
    `bulk_limit` of them bulk (None: no bound); only of the event types `only`, or of none of
    `exclude`, when given."""
    claim = Claim(conn, lease, now)
    if bulk_limit is None or bulk_limit >= limit:
        claim.take(limit, only=only, exclude=exclude)
    else:
        urgent = claim.take(limit, lane="transactional", only=only, exclude=exclude)
        claim.take(min(limit - urgent, bulk_limit), lane="bulk", only=only, exclude=exclude)
    return claim.done()


class Claim:
    """One claim's statements under one lease: each `take` leases up to its limit of one lane
    (or both) and some event types; `done` gives every event leased, read back at once on
    SQLite. Several takes make a claim that orders event types' lanes as one statement cannot
    (channel caps: store/queue/capped.py)."""

    def __init__(self, conn: Connection, lease: timedelta, now: datetime | None = None) -> None:
        self.conn = conn
        self.now = now or utcnow()
        self.lease = Lease.new(self.now, lease)
        self.params: dict[str, object] = {"b_now": self.now, **self.lease.params()}
        self.rows: list[ClaimRow] = []  # PostgreSQL's, as each statement returns them
        self.count = 0

    def take(
        self,
        limit: int,
        *,
        lane: str | None = None,
        only: frozenset[str] | None = None,
        exclude: frozenset[str] | None = None,
    ) -> int:
        """Lease up to `limit` more due events (`lane` "transactional"/"bulk", or both); how
        many it leased. No statement for a limit of 0."""
        if limit <= 0:
            return 0
        params = {**self.params, "b_limit": limit}
        among = "only" if only is not None else "except" if exclude else None
        if among is not None:
            params["b_ids"] = sorted(only if only is not None else exclude or ())
        dialect = self.conn.dialect.name
        result = self.conn.execute(_CLAIM[dialect, among, lane], params)
        if dialect == "sqlite":  # read back in `done`
            leased = int(result.rowcount)
        else:
            rows = [ClaimRow._make(r) for r in result]
            self.rows.extend(rows)
            leased = len(rows)
        self.count += leased
        return leased

    def done(self) -> Claimed:
        """The events every take leased (by id), and their `processing` to announce."""
        rows = self.rows
        if self.conn.dialect.name == "sqlite" and self.count:
            # The rows of every statement, read back by their lease at once.
            rows = [ClaimRow._make(r) for r in _CLAIMED.rows(self.conn, self.params)]
        rows.sort(key=lambda r: r.id)
        processing = EventStatus.PROCESSING.value
        return Claimed(
            [r.claimed(self.lease) for r in rows],
            [StatusChange(r.pkey, r.event_id, processing, self.now) for r in rows if r.hooked],
        )
