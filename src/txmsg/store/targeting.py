"""What targeting a claimed batch needs, read in one transaction."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from txmsg.core.fatigue import FatigueRule
from txmsg.core.kinds import CHANNELS, TargetType
from txmsg.core.profiles import Profile
from txmsg.core.statuses import EventStatus
from txmsg.core.targeting import lookup_key
from txmsg.core.timeutil import utcnow
from txmsg.core.typology import Blocklists
from txmsg.store import fatigue, profiles, typology
from txmsg.store.tables import event_configs, events, waiting


@dataclass(frozen=True, slots=True)
class BatchFacts:
    profiles: dict[tuple[str, str], Profile] = field(default_factory=dict)
    lists: Blocklists = field(default_factory=Blocklists)
    rules: list[FatigueRule] = field(default_factory=list)


def load_batch(
    conn: Connection,
    keys: dict[str, set[str]],
    addresses: set[tuple[str, str]],
    with_rules: bool,
) -> BatchFacts:
    """Profiles by reconciliation key, the denied and quarantined addresses among the batch's
    (the events' own and the found profiles'), and the enabled fatigue rules."""
    found = profiles.lookup(conn, keys) if keys else {}
    # The denylist applies to profile-based messages only; quarantine and STOPs to every message.
    of_profiles = {
        (channel, address)
        for profile in found.values()
        for channel in CHANNELS
        if (address := profile.address(channel))
    }
    denied = typology.denied(conn, of_profiles)
    quarantined, stopped = typology.held_addresses(conn, of_profiles | addresses)
    rules = fatigue.list_rules(conn, enabled_only=True) if with_rules else []
    return BatchFacts(found, Blocklists(denied, quarantined, stopped), rules)


# Marks a scheduled event whose profile was looked up ahead and not found (looked up again when
# it comes due); never shown.
NO_PROFILE = ""


def _not_looked_up(dialect: str) -> sa.ColumnElement[bool]:
    """No profile looked up yet. Every event-based event has none either: told so (`likely`),
    SQLite's planner reads the scheduled events (ix_events_scheduled) instead of walking
    ix_events_profile's NULL entries, the whole queue (50 ms a sweep at 100,000 queued)."""
    missing = events.c.profile_id.is_(None)
    return sa.func.likely(missing, type_=sa.Boolean) if dialect == "sqlite" else missing


def scheduled_to_target(dialect: str, now: datetime, limit: int) -> sa.Select[Any]:
    """Profile-based events scheduled for later whose profile is not looked up yet, soonest
    first (along ix_events_scheduled, which holds only the events scheduled for later)."""
    return (
        sa.select(
            events.c.id,
            events.c.email,
            events.c.mobile_phone,
            events.c.ctx,
            event_configs.c.target,
            event_configs.c.reconciliation,
        )
        .select_from(events.join(event_configs, event_configs.c.event_id == events.c.event_id))
        .where(
            waiting(EventStatus.PENDING, EventStatus.PAUSED),
            events.c.due_at > now,
            events.c.scheduled_at > now,
            _not_looked_up(dialect),
            event_configs.c.target == TargetType.PROFILE,
        )
        .order_by(events.c.scheduled_at, events.c.id)
        .limit(limit)
        # PostgreSQL: events a write cycle holds are left to the next sweep (no deadlock).
        .with_for_update(of=events, skip_locked=True)
    )


def pretarget_scheduled(conn: Connection, limit: int = 500, now: datetime | None = None) -> int:
    """Find ahead the profiles of profile-based events scheduled for later, so that fatigue
    rules count them before they are sent. One batch of `limit` events per call."""
    rows = conn.execute(scheduled_to_target(conn.dialect.name, now or utcnow(), limit)).all()
    if not rows:
        return 0
    wanted = {
        row.id: lookup_key(row.target, row.reconciliation, row.email, row.ctx, row.mobile_phone)
        for row in rows
    }
    keys: dict[str, set[str]] = {}
    for key in wanted.values():
        if key is not None:
            keys.setdefault(key[0], set()).add(key[1])
    found = profiles.lookup(conn, keys) if keys else {}
    updates = []
    for row_id, key in wanted.items():
        profile = found.get(key) if key is not None else None
        updates.append({"b_id": row_id, "b_profile": profile.profile_id if profile else NO_PROFILE})
    conn.execute(
        sa.update(events)
        .where(events.c.id == sa.bindparam("b_id"))
        .values(profile_id=sa.bindparam("b_profile")),
        updates,
    )
    return len(updates)


def languages(
    conn: Connection, target: str, reconciliation: dict[str, str] | None, triggers: list[Any]
) -> list[str | None]:
    """The language of each stored trigger's profile now, found as the send's targeting finds
    it (`lookup_key`, then `profiles.lookup`), so a dry run picks the variant a send would:
    None for an event-based message, or a trigger whose profile is not found."""
    wanted = [lookup_key(target, reconciliation, t.email, t.ctx, t.mobile_phone) for t in triggers]
    keys: dict[str, set[str]] = {}
    for key in wanted:
        if key is not None:
            keys.setdefault(key[0], set()).add(key[1])
    found = profiles.lookup(conn, keys) if keys else {}
    out: list[str | None] = []
    for key in wanted:
        profile = found.get(key) if key is not None else None
        out.append(profile.language if profile is not None else None)
    return out
