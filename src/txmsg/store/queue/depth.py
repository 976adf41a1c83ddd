"""The queue's depth: events still pending, paused or being sent, by lane and status; and
the due events channel caps hold (read when metrics are scraped)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from txmsg.core.kinds import Priority
from txmsg.core.queue import priority_lane
from txmsg.core.rate_limit import WindowUse, held_lanes
from txmsg.core.statuses import EventStatus
from txmsg.store.channel_configs import all_cap_uses
from txmsg.store.tables import event_configs, events

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


@dataclass(frozen=True, slots=True)
class QueueFigures:
    """What a metrics scrape reads of the queue: its depth, each channel cap's use, and
    (channel configuration, lane, count) of the due pending events a spent cap holds."""

    depth: list[tuple[str, str, int]]
    caps: dict[str, list[WindowUse]]
    held: list[tuple[str, str, int]]


def queue_figures(conn: Connection, now: datetime) -> QueueFigures:
    """The depth, and the caps' use from their counters; the events a cap holds are counted
    only for the lanes of a spent window (none while every cap has room)."""
    caps = all_cap_uses(conn, now)
    lanes = {name: held_lanes(uses) for name, uses in caps.items()}
    return QueueFigures(queue_depth(conn), caps, _held(conn, lanes, now))


def _held(
    conn: Connection, lanes: dict[str, frozenset[Priority]], now: datetime
) -> list[tuple[str, str, int]]:
    names = [name for name, held in lanes.items() if held]
    if not names:
        return []
    stmt = (
        sa.select(event_configs.c.channel_config, events.c.priority, sa.func.count())
        .select_from(events.join(event_configs, events.c.event_id == event_configs.c.event_id))
        .where(
            events.c.status == EventStatus.PENDING.value,
            events.c.due_at <= now,
            event_configs.c.channel_config.in_(names),
        )
        .group_by(event_configs.c.channel_config, events.c.priority)
    )
    counts = {(name, lane.value): 0 for name in names for lane in lanes[name]}
    for name, rank, count in conn.execute(stmt):
        key = (name, priority_lane(rank).value)
        if key in counts:
            counts[key] += count
    return [(name, lane, count) for (name, lane), count in sorted(counts.items())]
