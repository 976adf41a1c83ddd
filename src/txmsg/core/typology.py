"""Typology rules: whether a message may go to an address at all.

Opt-out and denylist apply to profile-based messages; quarantine to every message, as does a
number held for an SMS STOP (the recipient's opt-out at the provider: `typology:opt_out:sms`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from txmsg.core.profiles import Profile

OPT_OUT = "typology:opt_out"
DENYLIST = "typology:denylist"
QUARANTINE = "typology:quarantine"


@dataclass(frozen=True, slots=True)
class Blocklists:
    """(channel, address) pairs found on the denylist, in quarantine and held for an opt-out
    at the provider (an SMS STOP) for one batch."""

    denied: frozenset[tuple[str, str]] = field(default_factory=frozenset)
    quarantined: frozenset[tuple[str, str]] = field(default_factory=frozenset)
    stopped: frozenset[tuple[str, str]] = field(default_factory=frozenset)


def excluded_by(
    channel: str, address: str, profile: Profile | None, lists: Blocklists
) -> str | None:
    """The rule that excludes this message (its reason), or None when it may be sent."""
    if profile is not None:
        if profile.opted_out(channel):
            return f"{OPT_OUT}:{channel}"
        if (channel, address) in lists.denied:
            return DENYLIST
    if (channel, address) in lists.stopped:  # the person's opt-out, whoever the message is for
        return f"{OPT_OUT}:{channel}"
    if (channel, address) in lists.quarantined:
        return QUARANTINE
    return None
