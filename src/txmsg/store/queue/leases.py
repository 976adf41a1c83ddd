"""Leases held by dispatchers: renewed while a send is slow, released when a worker died."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from txmsg.core.statuses import EventStatus
from txmsg.core.timeutil import utcnow
from txmsg.store import bulk
from txmsg.store.queue.changes import Changed, unlocked, update_status
from txmsg.store.tables import events, status_in


def _renew(row: bulk.Source) -> sa.Update:
    return (
        sa.update(events)
        .where(events.c.id == row["b_id"], events.c.lease_token == row["b_token"])
        .values(lease_until=sa.bindparam("b_until", type_=events.c.lease_until.type))
    )


# One lease (event id, token), renewed only while it is still the event's.
_RENEW = bulk.UpdateRows(
    "renew lease",
    (sa.column("b_id", events.c.id.type), sa.column("b_token", events.c.lease_token.type)),
    _renew,
    joined=False,  # one executemany, as few as the sends in flight
)


def renew_in(conn: Connection, leases: Sequence[tuple[int, str]], until: datetime) -> None:
    """Extend the leases (event id, lease token) still held to `until`: a slow send keeps
    its event."""
    bulk.execute(conn, _RENEW, [{"b_id": i, "b_token": t} for i, t in leases], b_until=until)


def release_expired_in(conn: Connection, now: datetime | None = None) -> Changed:
    """Events whose worker died mid-send (their lease ended) go back to the queue; one whose
    outcome a write cycle is recording right now (its row locked) is left to that cycle."""
    now = now or utcnow()
    expired = sa.and_(status_in(EventStatus.PROCESSING), events.c.lease_until < now)
    stmt = (
        sa.update(events)
        .where(unlocked(conn, expired))
        .values(
            status=EventStatus.PENDING.value, lease_until=None, lease_token=None, updated_at=now
        )
    )
    reason = "claimed again: the lease of the send expired"
    return update_status(conn, stmt, EventStatus.PENDING.value, now, reason)
