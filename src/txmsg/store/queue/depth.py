"""The queue's depth: events still pending, paused or being sent, by lane and status."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from txmsg.core.kinds import Priority
from txmsg.core.queue import priority_lane
from txmsg.core.statuses import EventStatus
from txmsg.store.tables import events

QUEUED = (EventStatus.PENDING, EventStatus.PAUSED, EventStatus.PROCESSING)


def queue_depth(conn: Connection) -> list[tuple[str, str, int]]:
    """(lane, status, count) for every queued status of each lane (zeros included).

    The statuses are those of the queue's partial indexes: finished events are not read."""
    counts = {(lane.value, s.value): 0 for lane in Priority for s in QUEUED}
    stmt = (
        sa.select(events.c.priority, events.c.status, sa.func.count())
        .where(events.c.status.in_([s.value for s in QUEUED]))
        .group_by(events.c.priority, events.c.status)
    )
    for rank, status, count in conn.execute(stmt):
        key = (priority_lane(rank).value, status)
        counts[key] = counts.get(key, 0) + count
    return [(lane, status, count) for (lane, status), count in sorted(counts.items())]
