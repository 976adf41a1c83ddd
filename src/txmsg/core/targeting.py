"""Targeting: who a claimed event goes to, or why it goes nowhere (pure; data comes in batches)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from txmsg.core.kinds import Channel, TargetType
from txmsg.core.profiles import Profile
from txmsg.core.reconciliation import Reconciliation
from txmsg.core.statuses import EventStatus
from txmsg.core.typology import Blocklists, excluded_by


@dataclass(frozen=True, slots=True)
class Target:
    """Where the message goes; or, when `status` is set, how the event ends instead."""

    address: str | None
    profile: Profile | None = None
    status: EventStatus | None = None
    reason: str | None = None


def lookup_key(
    target: str,
    reconciliation: dict[str, str] | None,
    email: str | None,
    ctx: dict[str, Any],
    mobile_phone: str | None = None,
) -> tuple[str, str] | None:
    """(profile field, value) to find the profile of a profile-based event by."""
    if target != TargetType.PROFILE:
        return None
    rec = Reconciliation.of(reconciliation)
    value = rec.key(email, ctx, mobile_phone)
    return (rec.to, value) if value is not None else None


def resolve(
    *,
    target: str,
    channel: str,
    reconciliation: dict[str, str] | None,
    email: str | None,
    ctx: dict[str, Any],
    profiles: Mapping[tuple[str, str], Profile],
    lists: Blocklists,
    mobile_phone: str | None = None,
) -> Target:
    profile: Profile | None = None
    if target == TargetType.PROFILE:
        rec = Reconciliation.of(reconciliation)
        key = lookup_key(target, reconciliation, email, ctx, mobile_phone)
        if key is None:
            return Target(
                None, status=EventStatus.TARGETING_FAILED, reason=f"the event has no {rec.source}"
            )
        profile = profiles.get(key)
        if profile is None:
            return Target(
                None,
                status=EventStatus.TARGETING_FAILED,
                reason=f"no profile matches {rec.to}={key[1]!r}",
            )
        address = profile.address(channel)
        if not address:
            return Target(
                None,
                profile,
                EventStatus.TARGETING_FAILED,
                f"profile '{profile.profile_id}' has no {channel} address",
            )
    else:
        sms = channel == Channel.SMS
        address = mobile_phone if sms else email
        if not address:
            wanted = "mobile phone number" if sms else "email address"
            return Target(
                None, status=EventStatus.TARGETING_FAILED, reason=f"the event has no {wanted}"
            )
    rule = excluded_by(channel, address, profile, lists)
    if rule is not None:
        return Target(address, profile, EventStatus.IGNORED, rule)
    return Target(address, profile)
