"""The kinds a route is sorted by: its channel, its target type and its priority lane.

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


class Priority(StrEnum):
    """An event configuration's lane: claims take due transactional events before bulk ones."""

    TRANSACTIONAL = "transactional"  # a person is waiting (password reset, order confirmation)
    BULK = "bulk"  # nobody is waiting (newsletters, reminders, digests)


CHANNELS = tuple(c.value for c in Channel)
TARGET_TYPES = tuple(t.value for t in TargetType)
PRIORITIES = tuple(p.value for p in Priority)
