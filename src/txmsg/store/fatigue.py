"""Fatigue rules, the reservations they count, and their exclusions (reported per day)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from txmsg.core.errors import conflict, not_found
from txmsg.core.fatigue import MAX_PERIOD, FatigueRequest, FatigueRule, Sent, decide
from txmsg.core.statuses import EventStatus
from txmsg.core.timeutil import utcnow
from txmsg.store.tables import (
    event_configs,
    events,
    fatigue_exclusions,
    fatigue_reservations,
    fatigue_rules,
    profiles,
)

WAITING = [EventStatus.PENDING.value, EventStatus.PAUSED.value]


def _rule(row: Any) -> FatigueRule:
    return FatigueRule(
        name=row.name,
        channel=row.channel,
        max_messages=row.max_messages,
        max_attribute=row.max_attribute,
        period=row.period,
        period_seconds=row.period_seconds,
        enabled=bool(row.enabled),
    )


def _values(rule: FatigueRule) -> dict[str, Any]:
    return {
        "channel": rule.channel,
        "max_messages": rule.max_messages,
        "max_attribute": rule.max_attribute,
        "period": rule.period,
        "period_seconds": rule.period_seconds,
        "enabled": rule.enabled,
    }


def list_rules(conn: Connection, *, enabled_only: bool = False) -> list[FatigueRule]:
    stmt = sa.select(fatigue_rules).order_by(fatigue_rules.c.name)
    if enabled_only:
        stmt = stmt.where(fatigue_rules.c.enabled.is_(True))
    return [_rule(r) for r in conn.execute(stmt)]


def require(conn: Connection, name: str) -> FatigueRule:
    row = conn.execute(sa.select(fatigue_rules).where(fatigue_rules.c.name == name)).first()
    if row is None:
        raise not_found(f"no fatigue rule '{name}'")
    return _rule(row)


def create(conn: Connection, rule: FatigueRule) -> FatigueRule:
    exists = conflict(f"a fatigue rule named '{rule.name}' already exists")
    taken = sa.select(fatigue_rules.c.name).where(fatigue_rules.c.name == rule.name)
    if conn.execute(taken).first():
        raise exists
    now = utcnow()
    try:
        conn.execute(
            sa.insert(fatigue_rules).values(
                name=rule.name, **_values(rule), created_at=now, updated_at=now
            )
        )
    except IntegrityError:
        raise exists from None
    return require(conn, rule.name)


def replace(conn: Connection, rule: FatigueRule) -> FatigueRule:
    result = conn.execute(
        sa.update(fatigue_rules)
        .where(fatigue_rules.c.name == rule.name)
        .values(**_values(rule), updated_at=utcnow())
    )
    if result.rowcount == 0:
        raise not_found(f"no fatigue rule '{rule.name}'")
    return require(conn, rule.name)


def delete(conn: Connection, name: str) -> None:
    result = conn.execute(sa.delete(fatigue_rules).where(fatigue_rules.c.name == name))
    if result.rowcount == 0:
        raise not_found(f"no fatigue rule '{name}'")


# The statements of reserve_in, built once (expanding parameters for the id lists).
_IDS: sa.BindParameter[list[str]] = sa.bindparam("b_ids", expanding=True)
_SQLITE_WRITE_LOCK = sa.delete(fatigue_reservations).where(sa.false())
_LOCK_PROFILES = (
    sa.select(profiles.c.profile_id)
    .where(profiles.c.profile_id.in_(_IDS))
    .order_by(profiles.c.profile_id)
    .with_for_update()
)
_PKEYS: sa.BindParameter[list[str]] = sa.bindparam("b_pkeys", expanding=True)
# The decisions made before for these messages: reserved (rule NULL), or excluded by a rule.
_DECIDED = sa.union_all(
    sa.select(fatigue_reservations.c.pkey, sa.null().label("rule")).where(
        fatigue_reservations.c.pkey.in_(_PKEYS)
    ),
    sa.select(fatigue_exclusions.c.pkey, fatigue_exclusions.c.rule).where(
        fatigue_exclusions.c.pkey.in_(_PKEYS)
    ),
)
_HISTORY = sa.select(
    fatigue_reservations.c.profile_id, fatigue_reservations.c.channel, fatigue_reservations.c.at
).where(
    fatigue_reservations.c.profile_id.in_(_IDS),
    fatigue_reservations.c.at > sa.bindparam("b_since", type_=fatigue_reservations.c.at.type),
)
_SCHEDULED = (
    sa.select(events.c.profile_id, events.c.scheduled_at, event_configs.c.channel)
    .select_from(events.join(event_configs, event_configs.c.event_id == events.c.event_id))
    .where(
        events.c.profile_id.in_(_IDS),
        events.c.status.in_(WAITING),
        events.c.scheduled_at > sa.bindparam("b_now", type_=events.c.scheduled_at.type),
        events.c.scheduled_at < sa.bindparam("b_until", type_=events.c.scheduled_at.type),
    )
)


def reserve_in(
    conn: Connection,
    requests: list[FatigueRequest],
    rules: list[FatigueRule],
    now: datetime | None = None,
) -> dict[str, str | None]:
    """Evaluate and reserve in one transaction: pkey -> the excluding rule, or None (send).

    The profiles' rows are locked first (PostgreSQL: `FOR UPDATE`, in profile order so two
    dispatchers never deadlock; SQLite: the database write lock), so every dispatcher counting a
    profile's messages sees the reservations committed before it: under any concurrency a
    profile gets exactly its maximum. A message decided before (a retried event, or one
    claimed again after its lease lapsed) keeps its first decision: reserved, or excluded.

    `now` is the database's time (`DatabaseClock`): every process's reservations and windows
    are on one clock, so a worker whose clock is off neither misses another's sends in its
    window nor stores its own outside theirs.
    """
    if not requests:
        return {}
    now = now or utcnow()
    ids = sorted({r.profile_id for r in requests})
    if conn.dialect.name == "sqlite":
        # A write takes SQLite's write lock before anything is read (the driver opens the
        # transaction at the first write): other processes wait until we commit.
        conn.execute(_SQLITE_WRITE_LOCK)
    else:
        conn.execute(_LOCK_PROFILES, {"b_ids": ids}).all()
    pkeys = [r.pkey for r in requests]
    already: dict[str, str | None] = {
        row.pkey: row.rule for row in conn.execute(_DECIDED, {"b_pkeys": pkeys})
    }
    longest = timedelta(seconds=max((r.period_seconds for r in rules), default=0))
    history: dict[str, list[Sent]] = {}
    for row in conn.execute(_HISTORY, {"b_ids": ids, "b_since": now - longest}):
        history.setdefault(row.profile_id, []).append(Sent(row.channel, row.at))
    # Messages scheduled for later count too (their profile is found ahead by housekeeping).
    for row in conn.execute(_SCHEDULED, {"b_ids": ids, "b_now": now, "b_until": now + longest}):
        history.setdefault(row.profile_id, []).append(Sent(row.channel, row.scheduled_at))
    fresh = [r for r in requests if r.pkey not in already]
    decisions = decide(fresh, rules, history, now)
    reserved = [
        {"pkey": r.pkey, "profile_id": r.profile_id, "channel": r.channel, "at": now}
        for r in fresh
        if decisions[r.pkey] is None
    ]
    if reserved:
        conn.execute(sa.insert(fatigue_reservations), reserved)
    day = now.date().isoformat()
    excluded = [
        {"rule": rule, "day": day, "pkey": pkey, "at": now}
        for pkey, rule in decisions.items()
        if rule is not None
    ]
    if excluded:
        conn.execute(sa.insert(fatigue_exclusions), excluded)
    return {**already, **decisions}


def release_in(conn: Connection, pkeys: list[str]) -> None:
    """The reservations of messages that ended without a send (refused, unroutable, expired):
    a rule counts the messages a person was sent, and these never were."""
    if pkeys:
        conn.execute(sa.delete(fatigue_reservations).where(fatigue_reservations.c.pkey.in_(pkeys)))


def report(conn: Connection, name: str) -> list[dict[str, Any]]:
    """Exclusions of a rule per UTC day, oldest first."""
    require(conn, name)
    rows = conn.execute(
        sa.select(fatigue_exclusions.c.day, sa.func.count().label("excluded"))
        .where(fatigue_exclusions.c.rule == name)
        .group_by(fatigue_exclusions.c.day)
        .order_by(fatigue_exclusions.c.day)
    )
    return [{"day": r.day, "excluded": r.excluded} for r in rows]


def purge_reservations(conn: Connection, now: datetime | None = None) -> int:
    """Reservations older than the longest possible period count for nothing: drop them."""
    before = (now or utcnow()) - MAX_PERIOD
    result = conn.execute(sa.delete(fatigue_reservations).where(fatigue_reservations.c.at < before))
    return result.rowcount
