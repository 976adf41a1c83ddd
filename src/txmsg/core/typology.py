"""Typology rules: whether a message may go to an address at all.

Opt-out and denylist apply to profile-based messages; quarantine to every message.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from txmsg.core.profiles import Profile

OPT_OUT = "typology:opt_out"
DENYLIST = "typology:denylist"
QUARANTINE = "typology:quarantine"


@dataclass(frozen=True, slots=True)
class Blocklists:
    """(channel, address) pairs found on the denylist and in quarantine for one batch."""

    denied: frozenset[tuple[str, str]] = field(default_factory=frozenset)
    quarantined: frozenset[tuple[str, str]] = field(default_factory=frozenset)


def excluded_by(
    channel: str, address: str, profile: Profile | None, lists: Blocklists
) -> str | None:
    """The rule that excludes this message (its reason), or None when it may be sent."""
    if profile is not None:
        if profile.opted_out(channel):
            return f"{OPT_OUT}:{channel}"
        if (channel, address) in lists.denied:
            return DENYLIST
    if (channel, address) in lists.quarantined:
        return QUARANTINE
    return None
