"""The two kinds a route is sorted by: its channel and its target type.

String-valued enums: a member compares and serialises as its value, so stored rows, JSON
answers and the strings in existing data stay exactly as they were.
"""

from __future__ import annotations

from enum import StrEnum


class Channel(StrEnum):
    EMAIL = "email"
    SMS = "sms"


class TargetType(StrEnum):
    """Where an event's recipient comes from: the trigger's payload or a stored profile."""

    EVENT = "event"
    PROFILE = "profile"


CHANNELS = tuple(c.value for c in Channel)
TARGET_TYPES = tuple(t.value for t in TargetType)
