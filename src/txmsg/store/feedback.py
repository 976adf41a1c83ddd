"""Recording feedback (bounces after acceptance, spam complaints) against its message.

One call per write cycle: one query finds the messages and their addresses, one insert
appends the entries not recorded yet (a report is recorded once per message and kind and
bounce class, by the delivery log's unique index: a DSN sent twice, the same bounce from the
listener and the HTTP endpoint, or from two processes at once, counts once), then each new
bounce goes through `typology.record_bounces` (quarantine) and each complaint puts the
address on the denylist, all in the write funnel's transaction.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from txmsg.core.delivery import Interaction, LogEntry
from txmsg.core.feedback import Feedback, FeedbackKind
from txmsg.core.kinds import Channel, TargetType
from txmsg.store import delivery_log, typology
from txmsg.store.tables import channel_configs, event_configs, events, profiles


@dataclass(frozen=True, slots=True)
class FeedbackTarget:
    """A message feedback may be about: its event type, channel and address."""

    pkey: str
    event_id: str
    channel: str
    address: str | None  # None: the profile it went to was deleted since


# A message a provider saw: sent, or an attempt that went out to one and ended unsent (a 4xx
# then a retry, a refusal). Only about such a message can a bounce or a complaint be: one about
# any other (queued, paused, ignored, expired unsent) names a wrong PKey, or is forged.
SEEN_BY_PROVIDER = sa.or_(events.c.sent_at.is_not(None), events.c.attempted_at.is_not(None))


def targets(conn: Connection, pkeys: set[str]) -> dict[str, FeedbackTarget]:
    """The messages of these PKeys that a provider saw (one query); an event-based message's
    address is the trigger's, a profile-based one's the profile's."""
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
        .where(events.c.pkey.in_(pkeys), SEEN_BY_PROVIDER)  # others: as unknown messages
    )
    out: dict[str, FeedbackTarget] = {}
    for r in rows:
        if r.target == TargetType.PROFILE:
            address = r.profile_email if r.channel == Channel.EMAIL else r.profile_mobile_phone
        else:
            address = r.email if r.channel == Channel.EMAIL else r.mobile_phone
        out[r.pkey] = FeedbackTarget(r.pkey, r.event_id, r.channel, address)
    return out


@dataclass(frozen=True, slots=True)
class MessageState:
    """What the feedback endpoint tells of a PKey: its status, and whether a provider saw it."""

    status: str
    seen: bool


def states(conn: Connection, pkeys: set[str]) -> dict[str, MessageState]:
    """The state of each of these PKeys that names a message (one query)."""
    if not pkeys:
        return {}
    rows = conn.execute(
        sa.select(events.c.pkey, events.c.status, SEEN_BY_PROVIDER.label("seen")).where(
            events.c.pkey.in_(pkeys)
        )
    )
    return {r.pkey: MessageState(r.status, bool(r.seen)) for r in rows}


def record_in(conn: Connection, reports: list[Feedback]) -> int:
    """Record the reports not recorded yet, for messages a provider saw; returns how many.
    A fixed number of statements, however many reports."""
    if not reports:
        return 0
    found = targets(conn, {f.pkey for f in reports})
    entries: list[LogEntry] = []
    for report in reports:
        target = found.get(report.pkey)
        if target is None:
            continue  # an unknown (purged) message, or one no provider saw
        detail: dict[str, object] = {"reason": report.reason[:500], "source": report.source}
        if report.kind == FeedbackKind.BOUNCE:
            kind = Interaction.BOUNCED
            detail = {"bounce": "hard" if report.hard else "soft", **detail}
        else:
            kind = Interaction.SPAM
        once = report.dedupe_key[2] or kind.value
        entries.append(LogEntry(target.pkey, target.event_id, kind, report.at, detail, once))
    # First the entries: a report already recorded (here, or by another process at the same
    # moment) is dropped by the delivery log's unique index, and changes nothing else.
    appended = delivery_log.append_in(conn, entries)
    bounces: list[typology.AddressBounce] = []
    complainers: list[tuple[str, str, str]] = []
    for entry in appended:
        target = found[entry.pkey]
        reason = str((entry.detail or {})["reason"])
        if target.address is None:
            continue
        if entry.kind == Interaction.BOUNCED:
            hard = entry.once == "hard"
            bounces.append(typology.AddressBounce(target.channel, target.address, hard, reason))
        else:
            complainers.append((target.channel, target.address, reason))
    typology.deny_if_absent(conn, complainers)
    typology.record_bounces(conn, bounces, [])
    return len(appended)


def bounce_domains(conn: Connection) -> frozenset[str]:
    """The bounce domains of the email channel configurations (one query)."""
    rows = conn.execute(
        sa.select(channel_configs.c.settings).where(channel_configs.c.channel == Channel.EMAIL)
    )
    return frozenset(
        domain for (settings,) in rows if (domain := (settings or {}).get("bounce_domain"))
    )
