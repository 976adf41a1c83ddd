"""Fatigue rules: at most N profile-based messages per profile within a sliding period."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from txmsg.core.durations import parse_duration
from txmsg.core.errors import conflicting, invalid
from txmsg.core.kinds import CHANNELS
from txmsg.core.validation import as_integer, get_bool, get_choice, get_str, reject_unknown

RULE_CHANNELS = (*CHANNELS, "all")
RULE_FIELDS = {"name", "channel", "max_messages", "period", "enabled"}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}\Z")
# ISO 8601 durations in days, weeks, hours, minutes, seconds (no months or years: their
# length varies), e.g. P7D, P1W, PT12H, P1DT6H.
_PERIOD = re.compile(
    r"^P(?:(?P<w>[0-9]+)W)?(?:(?P<d>[0-9]+)D)?(?:T(?:(?P<h>[0-9]+)H)?(?:(?P<m>[0-9]+)M)?(?:(?P<s>[0-9]+)S)?)?\Z"
)
MAX_PERIOD = timedelta(days=366)


@dataclass(frozen=True, slots=True)
class FatigueRule:
    name: str
    channel: str
    max_messages: int | None  # a fixed maximum, or
    max_attribute: str | None  # the profile attribute holding each profile's maximum
    period: str
    period_seconds: int
    enabled: bool = True

    def applies_to(self, channel: str) -> bool:
        return self.channel in ("all", channel)

    def limit_for(self, attributes: dict[str, Any]) -> int | None:
        """The maximum for a profile; None when its attribute is missing (rule not applied)."""
        if self.max_attribute is None:
            return self.max_messages
        value = attributes.get(self.max_attribute)
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            return None
        return int(value)

    def view(self) -> dict[str, Any]:
        maximum: Any = (
            self.max_messages
            if self.max_attribute is None
            else {"profile_attribute": self.max_attribute}
        )
        return {
            "name": self.name,
            "channel": self.channel,
            "max_messages": maximum,
            "period": self.period,
            "enabled": self.enabled,
        }


def parse_period(value: Any, field_name: str = "period") -> tuple[str, int]:
    length = parse_duration(value, field_name, MAX_PERIOD, example="P7D, P1W or PT12H")
    return value, int(length.total_seconds())


def _parse_max(value: Any) -> tuple[int | None, str | None]:
    if isinstance(value, dict):
        reject_unknown(value, {"profile_attribute"}, "max_messages.")
        attribute = get_str(value, "profile_attribute", prefix="max_messages.", required=True)
        return None, attribute
    count = as_integer(value)
    if count is None or not 0 <= count <= 1_000_000:
        raise invalid(
            "max_messages", 'must be an integer from 0 or {"profile_attribute": "<name>"}'
        )
    return count, None


def parse_rule(body: Any) -> FatigueRule:
    if not isinstance(body, dict):
        raise invalid("body", "must be a JSON object")
    reject_unknown(body, RULE_FIELDS)
    name = get_str(body, "name", required=True, max_length=64)
    assert name is not None
    if not _NAME.match(name):
        raise invalid("name", "must hold letters, digits, _ . - (a letter or digit first)")
    channel = get_choice(body, "channel", RULE_CHANNELS, required=True)
    if "max_messages" not in body:
        raise invalid("max_messages", "is required")
    max_messages, attribute = _parse_max(body["max_messages"])
    period, seconds = parse_period(body.get("period"))
    return FatigueRule(
        name=name,
        channel=channel or "all",
        max_messages=max_messages,
        max_attribute=attribute,
        period=period,
        period_seconds=seconds,
        enabled=bool(get_bool(body, "enabled", default=True)),
    )


def patch_rule(current: FatigueRule, body: Any) -> FatigueRule:
    if not isinstance(body, dict):
        raise invalid("body", "must be a JSON object")
    reject_unknown(body, RULE_FIELDS)
    merged = {**current.view(), **{k: v for k, v in body.items()}}
    rule = parse_rule(merged)  # a malformed name is a 400 like any field; another name a 409
    if rule.name != current.name:
        raise conflicting("name", "cannot be changed")
    return rule


@dataclass(frozen=True, slots=True)
class FatigueRequest:
    """A profile-based message about to be sent."""

    pkey: str
    profile_id: str
    channel: str
    attributes: dict[str, Any] = field(hash=False)


@dataclass(frozen=True, slots=True)
class FatigueCheck:
    """The profile-based messages of one claimed batch, to evaluate and reserve together."""

    requests: list[FatigueRequest]
    rules: list[FatigueRule]


@dataclass(slots=True)
class Sent:
    channel: str
    at: datetime


def decide(
    requests: Iterable[FatigueRequest],
    rules: list[FatigueRule],
    history: dict[str, list[Sent]],
    now: datetime,
) -> dict[str, str | None]:
    """pkey -> the rule excluding it (None: send, and count it). `history` grows as we go.

    `history` holds each profile's messages already sent and those scheduled for later. A
    message is sent only if every window of the rule's period that holds it keeps at most the
    maximum, so a message scheduled for tomorrow counts against today's sends too. Requests are
    decided in order, each seeing the ones allowed before it, so a batch holding many messages
    for one profile is counted exactly.
    """
    decisions: dict[str, str | None] = {}
    for request in requests:
        sent = history.setdefault(request.profile_id, [])
        excluded: str | None = None
        for rule in rules:
            if not rule.enabled or not rule.applies_to(request.channel):
                continue
            limit = rule.limit_for(request.attributes)
            if limit is None:
                continue
            times = [s.at for s in sent if rule.applies_to(s.channel)]
            if not fits(times, now, timedelta(seconds=rule.period_seconds), limit):
                excluded = rule.name
                break
        decisions[request.pkey] = excluded
        if excluded is None:
            sent.append(Sent(request.channel, now))
    return decisions


def fits(times: list[datetime], now: datetime, period: timedelta, limit: int) -> bool:
    """Whether one more message at `now` keeps every window of length `period` holding it
    (the windows `(end - period, end]` with `now <= end < now + period`) within `limit`."""
    near = [t for t in times if now - period < t < now + period]
    for end in [now, *(t for t in near if t > now)]:
        if sum(1 for t in near if end - period < t <= end) + 1 > limit:
            return False
    return True
