"""Report metrics: what a status change or a delivery-log entry adds to the day aggregates.

Day aggregates are counted when things happen (write funnel, delivery-log appends), never
recomputed from detailed rows: they survive the interaction-data lifecycle.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from txmsg.core.delivery import Interaction
from txmsg.core.errors import invalid, refused
from txmsg.core.machine import is_machine
from txmsg.core.statuses import EventStatus
from txmsg.core.timeutil import MAX_DATE, MIN_DATE

# Report columns, in order (JSON keys and CSV headers).
METRICS = (
    "sent",
    "delivered",
    "opened",
    "opened_unique",
    "clicked",
    "clicked_unique",
    "opened_machine",
    "clicked_machine",
    "bounced_hard",
    "bounced_soft",
    "spam",
    "unsubscribed",
    "failed",
    "ignored",
)

# Final statuses that count. `processed` is the send itself: the delivery-log kind `sent` is
# not counted again, whoever appends it.
STATUS_METRICS: dict[str, str] = {
    EventStatus.PROCESSED: "sent",
    EventStatus.DELIVERY_FAILED: "failed",
    EventStatus.ROUTING_FAILED: "failed",
    EventStatus.TARGETING_FAILED: "failed",
    EventStatus.TOO_OLD: "failed",
    EventStatus.IGNORED: "ignored",
}

INTERACTION_METRICS: dict[str, str] = {
    Interaction.DELIVERED: "delivered",
    Interaction.UNDELIVERED: "failed",
    Interaction.FAILED: "failed",
    Interaction.OPENED: "opened",
    Interaction.CLICKED: "clicked",
    Interaction.SPAM: "spam",
    Interaction.UNSUBSCRIBED: "unsubscribed",
}

# Kinds counted once more, as `<metric>_unique`, on a message's first human entry of that
# kind. Their machine entries (scanners, prefetch: core/machine.py) count as `<metric>_machine`
# only.
UNIQUE_KINDS = frozenset({Interaction.OPENED.value, Interaction.CLICKED.value})

# Events with no template version (failed before rendering, ignored) count under version 0.
NO_VERSION = 0

MAX_DAYS = 366
DEFAULT_DAYS = 30

CountKey = tuple[str, date, int, str]  # event_id, day, message_version, metric


def interaction_metric(kind: str, detail: dict[str, Any] | None) -> str | None:
    if kind == Interaction.BOUNCED:
        # A bounce without a class is counted soft: the address is not known to be dead.
        hard = (detail or {}).get("bounce") == "hard"
        return "bounced_hard" if hard else "bounced_soft"
    if kind in UNIQUE_KINDS and is_machine(detail):
        return INTERACTION_METRICS[kind] + "_machine"
    return INTERACTION_METRICS.get(kind)


def counts_unique(kind: str, detail: dict[str, Any] | None) -> bool:
    """Whether an entry may count as its message's unique open or click (a person's)."""
    return kind in UNIQUE_KINDS and not is_machine(detail)


@dataclass(frozen=True, slots=True)
class StatusChange:
    """An event's new status, as the write funnel or a lifecycle change applied it."""

    pkey: str
    event_id: str
    status: str
    at: datetime
    message_version: int | None = None
    reason: str | None = None


def count_statuses(changes: list[StatusChange]) -> Counter[CountKey]:
    counts: Counter[CountKey] = Counter()
    for change in changes:
        metric = STATUS_METRICS.get(change.status)
        if metric is not None:
            version = change.message_version or NO_VERSION
            counts[(change.event_id, change.at.date(), version, metric)] += 1
    return counts


@dataclass(frozen=True, slots=True)
class DayRange:
    first: date
    last: date

    def days(self) -> list[date]:
        return [self.first + timedelta(days=i) for i in range((self.last - self.first).days + 1)]


# The spec's pattern for `from` and `to`: `date.fromisoformat` alone also reads `20261201` and
# `2026-W49-1` (ISO 8601's basic and week forms), which the documented form is not.
_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def _parse_day(value: str, name: str) -> date:
    try:
        if not _DAY.fullmatch(value):
            raise ValueError(value)
        day = date.fromisoformat(value)
    except ValueError:
        raise invalid(name, f"'{value}' is not a date (YYYY-MM-DD)", in_header=True) from None
    if not MIN_DATE.date() <= day < MAX_DATE.date():  # and room for the default 30 days
        raise invalid(name, "must be between the years 2000 and 9000", in_header=True)
    return day


def day_range(raw_from: str | None, raw_to: str | None, today: date) -> DayRange:
    """`from`/`to` (inclusive days, UTC); the last 30 days by default, at most 366 days.

    Query parameters: their errors carry no JSON pointer (there is no body to point into).
    Absent (None) is the default; given empty is malformed, as any other value that is no
    date (a 400 naming it).
    """
    last = _parse_day(raw_to, "to") if raw_to is not None else today
    # By default the 30 days up to `to`, from the first day there is at the earliest.
    default_first = max(last - timedelta(days=DEFAULT_DAYS - 1), MIN_DATE.date())
    first = _parse_day(raw_from, "from") if raw_from is not None else default_first
    # Each day is valid alone (a 400 otherwise); the pair is a 422, which a schema cannot say.
    if first > last:
        raise refused("from", "must not be after `to`", in_header=True)
    if (last - first).days >= MAX_DAYS:
        raise refused("from", f"the range may span at most {MAX_DAYS} days", in_header=True)
    return DayRange(first, last)


def zero() -> dict[str, int]:
    return dict.fromkeys(METRICS, 0)


def add_into(target: dict[str, int], metric: str, count: int) -> None:
    if metric in target:
        target[metric] += count


CountRow = tuple[str, date, int, str, int]  # event_id, day, message_version, metric, count


@dataclass(slots=True)
class Breakdown:
    """Counts of one slice (all, one template version, one event): total and per day."""

    total: dict[str, int]
    days: dict[date, dict[str, int]]

    @classmethod
    def empty(cls, rng: DayRange) -> Breakdown:
        return cls(zero(), {d: zero() for d in rng.days()})

    def add(self, day: date, metric: str, count: int) -> None:
        add_into(self.total, metric, count)
        if day in self.days:
            add_into(self.days[day], metric, count)

    def day_views(self) -> list[dict[str, Any]]:
        return [{"day": d.isoformat(), **counts} for d, counts in sorted(self.days.items())]


def breakdown(
    rows: list[CountRow], rng: DayRange, by: int
) -> tuple[Breakdown, dict[Any, Breakdown]]:
    """All rows summed, and summed per the row field at index `by` (0: event, 2: version)."""
    everything = Breakdown.empty(rng)
    parts: dict[Any, Breakdown] = {}
    for row in rows:
        _, day, _, metric, count = row
        everything.add(day, metric, count)
        part = parts.get(row[by])
        if part is None:
            part = parts[row[by]] = Breakdown.empty(rng)
        part.add(day, metric, count)
    return everything, dict(sorted(parts.items()))


def version_label(version: int) -> int | None:
    return None if version == NO_VERSION else version


def event_report(event_id: str, rows: list[CountRow], rng: DayRange) -> dict[str, Any]:
    everything, versions = breakdown(rows, rng, 2)
    return {
        "eventId": event_id,
        "from": rng.first.isoformat(),
        "to": rng.last.isoformat(),
        "total": everything.total,
        "days": everything.day_views(),
        "versions": [
            {"message_version": version_label(v), "total": b.total, "days": b.day_views()}
            for v, b in versions.items()
        ],
    }


def tag_report(
    tag: str, event_ids: list[str], rows: list[CountRow], rng: DayRange
) -> dict[str, Any]:
    everything, per_event = breakdown(rows, rng, 0)
    return {
        "tag": tag,
        "from": rng.first.isoformat(),
        "to": rng.last.isoformat(),
        "total": everything.total,
        "days": everything.day_views(),
        "events": [
            {"eventId": e, "total": b.total, "days": b.day_views()}
            for e, b in ((e, per_event.get(e) or Breakdown.empty(rng)) for e in event_ids)
        ],
    }


def report_csv_rows(report: dict[str, Any], slices: str, label: str) -> list[list[Any]]:
    """A report as CSV rows: one per day for everything (`all` in the `label` column), each
    followed by one per slice (`versions` or `events`) that has counts that day."""
    per_day: dict[str, list[list[Any]]] = {}
    for part in report[slices]:
        name = "" if part[label] is None else part[label]
        for day in part["days"]:
            if any(day[m] for m in METRICS):
                row = [day["day"], name, *(day[m] for m in METRICS)]
                per_day.setdefault(day["day"], []).append(row)
    rows: list[list[Any]] = [["day", label, *METRICS]]
    for day in report["days"]:
        rows.append([day["day"], "all", *(day[m] for m in METRICS)])
        rows.extend(per_day.get(day["day"], []))
    return rows
