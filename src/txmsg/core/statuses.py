"""Event statuses (named as Adobe Campaign names them) and the event configuration lifecycle."""

from __future__ import annotations

from enum import StrEnum

from txmsg.core.errors import conflict


class EventStatus(StrEnum):
    PENDING = "pending"
    PROCESSING = "processing"
    PAUSED = "paused"
    PROCESSED = "processed"
    IGNORED = "ignored"
    DELIVERY_FAILED = "deliveryFailed"
    ROUTING_FAILED = "routingFailed"
    TOO_OLD = "tooOld"
    TARGETING_FAILED = "targetingFailed"


class ConfigState(StrEnum):
    DRAFT = "draft"
    PUBLISHED = "published"
    PAUSED = "paused"
    UNPUBLISHED = "unpublished"


# action -> (states it may start from, state it leads to)
TRANSITIONS: dict[str, tuple[frozenset[ConfigState], ConfigState]] = {
    "publish": (
        frozenset({ConfigState.DRAFT, ConfigState.UNPUBLISHED}),
        ConfigState.PUBLISHED,
    ),
    "pause": (frozenset({ConfigState.PUBLISHED}), ConfigState.PAUSED),
    "resume": (frozenset({ConfigState.PAUSED}), ConfigState.PUBLISHED),
    "unpublish": (
        frozenset({ConfigState.PUBLISHED, ConfigState.PAUSED}),
        ConfigState.UNPUBLISHED,
    ),
}

# States in which the trigger endpoint accepts events.
LIVE_STATES = frozenset({ConfigState.PUBLISHED, ConfigState.PAUSED})


def transition(current: ConfigState, action: str) -> ConfigState:
    """The state `action` leads to from `current`, or a 409 naming what is allowed."""
    sources, target = TRANSITIONS[action]
    if current not in sources:
        allowed = ", ".join(sorted(s.value for s in sources))
        raise conflict(
            f"cannot {action} an event configuration in state '{current}' (allowed from: {allowed})"
        )
    return target
