"""Leases held by dispatchers: renewed while a send is slow, released when a worker died."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from txmsg.core.statuses import EventStatus
from txmsg.core.timeutil import utcnow
from txmsg.store.queue.changes import Changed, unlocked, update_status
from txmsg.store.tables import events, status_in

_RENEWALS_PER_STATEMENT = 4096


def renew_in(conn: Connection, leases: Sequence[tuple[int, str]], until: datetime) -> set[int]:
    """Extend the leases (event id, lease token) still held to `until`: a slow send keeps
    its event. Returns the ids renewed: a lease that lapsed and was taken by another claim
    meanwhile (its process frozen, or cut off from the database) is not, and must not send."""
    renewed: set[int] = set()
    # In runs within the drivers' bound on parameters (two a lease): one run, as a rule.
    for start in range(0, len(leases), _RENEWALS_PER_STATEMENT):
        run = list(leases[start : start + _RENEWALS_PER_STATEMENT])
        stmt = (
            sa.update(events)
            .where(sa.tuple_(events.c.id, events.c.lease_token).in_(run))
            .values(lease_until=until)
            .returning(events.c.id)
        )
        renewed.update(conn.scalars(stmt))
    return renewed


# Leases of the sweeping process left alone by its sweep, at most (bound parameters).
_MAX_OWN = 1000


def release_expired_in(
    conn: Connection,
    now: datetime | None = None,
    own: Collection[str] = (),
    held: Sequence[tuple[datetime, datetime]] = (),
) -> Changed:
    """Events whose worker died mid-send (their lease ended) go back to the queue; one whose
    outcome a write cycle is recording right now (its row locked) is left to that cycle.

    The leases `own` (by token) are the sweeping process's: it is alive, its sends under way
    and its renewal late (a loaded machine), so they stay; released, their events would be
    claimed again and sent a second time. `held`: (start, end) of times in which a lease
    that ended stays (after an outage, those that ended during it wait for their workers a
    while: engine/scheduler.py)."""
    now = now or utcnow()
    expired = sa.and_(status_in(EventStatus.PROCESSING), events.c.lease_until < now)
    if held:
        during = [events.c.lease_until.between(start, end) for start, end in held]
        expired = sa.and_(expired, sa.not_(sa.or_(*during)))
    if own:
        expired = sa.and_(expired, events.c.lease_token.not_in(list(own)[:_MAX_OWN]))
    stmt = (
        sa.update(events)
        .where(unlocked(conn, expired))
        .values(
            status=EventStatus.PENDING.value, lease_until=None, lease_token=None, updated_at=now
        )
    )
    reason = "claimed again: the lease of the send expired"
    return update_status(conn, stmt, EventStatus.PENDING.value, now, reason)
