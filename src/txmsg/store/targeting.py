"""What targeting a claimed batch needs, read in one transaction."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy.engine import Connection

from txmsg.core.fatigue import FatigueRule
from txmsg.core.profiles import Profile
from txmsg.core.typology import CHANNELS, Blocklists
from txmsg.store import fatigue, profiles, typology


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
    # The denylist applies to profile-based messages only; quarantine to every message.
    of_profiles = {
        (channel, address)
        for profile in found.values()
        for channel in CHANNELS
        if (address := profile.address(channel))
    }
    denied = typology.denied(conn, of_profiles)
    quarantined = typology.quarantined(conn, of_profiles | addresses)
    rules = fatigue.list_rules(conn, enabled_only=True) if with_rules else []
    return BatchFacts(found, Blocklists(denied, quarantined), rules)
