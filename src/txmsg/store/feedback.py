"""Recording feedback (bounces after acceptance, spam complaints) against its message.

One call per write cycle: one query finds the messages and their addresses, one the reports
already recorded (a report is recorded once per message and kind: a DSN sent twice, or the
same bounce from the listener and the HTTP endpoint, counts once), then each new bounce goes
through `typology.record_bounces` (quarantine and `bounced` entries) and each complaint puts
the address on the denylist with its `spam` entry, all in the write funnel's transaction.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from txmsg.core.delivery import Interaction, LogEntry
from txmsg.core.feedback import Feedback, FeedbackKind
from txmsg.core.kinds import Channel, TargetType
from txmsg.store import typology
from txmsg.store.tables import channel_configs, delivery_log, event_configs, events, profiles


@dataclass(frozen=True, slots=True)
class FeedbackTarget:
    """A message feedback may be about: its event type, channel and address."""

    pkey: str
    event_id: str
    channel: str
    address: str | None  # None: the profile it went to was deleted since


def targets(conn: Connection, pkeys: set[str]) -> dict[str, FeedbackTarget]:
    """The messages of these PKeys (one query); an event-based message's address is the
    trigger's, a profile-based one's the profile's."""
    if not pkeys:
        return {}
    rows = conn.execute(
        sa.select(
            events.c.pkey,
            events.c.event_id,
            events.c.email,
            events.c.mobile_phone,
            event_configs.c.channel,
            event_configs.c.target,
            profiles.c.email.label("profile_email"),
            profiles.c.mobile_phone.label("profile_mobile_phone"),
        )
        .select_from(
            events.join(event_configs, event_configs.c.event_id == events.c.event_id).outerjoin(
                profiles, profiles.c.profile_id == events.c.profile_id
            )
        )
        .where(events.c.pkey.in_(pkeys))
    )
    out: dict[str, FeedbackTarget] = {}
    for r in rows:
        if r.target == TargetType.PROFILE:
            address = r.profile_email if r.channel == Channel.EMAIL else r.profile_mobile_phone
        else:
            address = r.email if r.channel == Channel.EMAIL else r.mobile_phone
        out[r.pkey] = FeedbackTarget(r.pkey, r.event_id, r.channel, address)
    return out


def existing(conn: Connection, pkeys: set[str]) -> set[str]:
    """Those of these PKeys that name a message (one query)."""
    if not pkeys:
        return set()
    return set(conn.execute(sa.select(events.c.pkey).where(events.c.pkey.in_(pkeys))).scalars())


def _recorded(conn: Connection, pkeys: set[str]) -> set[tuple[str, str, str | None]]:
    rows = conn.execute(
        sa.select(delivery_log.c.pkey, delivery_log.c.kind, delivery_log.c.detail).where(
            delivery_log.c.pkey.in_(pkeys),
            delivery_log.c.kind.in_([Interaction.BOUNCED.value, Interaction.SPAM.value]),
        )
    )
    return {
        (r.pkey, r.kind, (r.detail or {}).get("bounce") if r.kind == "bounced" else None)
        for r in rows
    }


def record_in(conn: Connection, reports: list[Feedback]) -> int:
    """Record the reports not recorded yet, for messages that exist; returns how many.
    A fixed number of statements, however many reports."""
    if not reports:
        return 0
    pkeys = {f.pkey for f in reports}
    found = targets(conn, pkeys)
    seen = _recorded(conn, set(found))
    bounces: list[typology.AddressBounce] = []
    complainers: list[tuple[str, str, str]] = []
    entries: list[LogEntry] = []
    for report in reports:
        target = found.get(report.pkey)
        if target is None or report.dedupe_key in seen:
            continue  # an unknown (purged) message, or a report already recorded
        seen.add(report.dedupe_key)
        detail: dict[str, object] = {"reason": report.reason[:500], "source": report.source}
        if report.kind == FeedbackKind.BOUNCE:
            kind = Interaction.BOUNCED
            detail = {"bounce": "hard" if report.hard else "soft", **detail}
            if target.address is not None:
                bounces.append(
                    typology.AddressBounce(
                        target.channel, target.address, report.hard, report.reason
                    )
                )
        else:
            kind = Interaction.SPAM
            if target.address is not None:
                complainers.append((target.channel, target.address, report.reason))
        entries.append(LogEntry(target.pkey, target.event_id, kind, report.at, detail))
    typology.deny_if_absent(conn, complainers)
    typology.record_bounces(conn, bounces, entries)
    return len(entries)


def bounce_domains(conn: Connection) -> frozenset[str]:
    """The bounce domains of the email channel configurations (one query)."""
    rows = conn.execute(
        sa.select(channel_configs.c.settings).where(channel_configs.c.channel == Channel.EMAIL)
    )
    return frozenset(
        domain for (settings,) in rows if (domain := (settings or {}).get("bounce_domain"))
    )
