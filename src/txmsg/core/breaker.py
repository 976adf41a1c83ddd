"""A circuit breaker per provider: closed, open for a cool-down, then one half-open probe.

After `failures` consecutive transient failures the breaker opens: sends skip the provider
until `cool_down` seconds have passed. Then one send is let through as a probe (half-open);
its success closes the breaker, its failure opens it for another cool-down. The state lives
in the process (each worker has its own breakers).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from txmsg.core.validation import get_int, get_number, reject_unknown, require_object


class State(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True, slots=True)
class BreakerSettings:
    failures: int = 3
    cool_down: float = 30.0


class CircuitBreaker:
    def __init__(self, settings: BreakerSettings) -> None:
        self._settings = settings
        self._failures = 0
        self._state = State.CLOSED
        self._opened_at = 0.0

    @property
    def state(self) -> State:
        return self._state

    def allow(self, now: float) -> bool:
        """Whether a send may go to the provider now (an open breaker past its cool-down lets
        exactly one probe through)."""
        if self._state == State.CLOSED:
            return True
        if self._state == State.OPEN and now - self._opened_at >= self._settings.cool_down:
            self._state = State.HALF_OPEN
            return True
        return False

    def succeeded(self) -> None:
        self._failures = 0
        self._state = State.CLOSED

    def released(self) -> None:
        """A send let through ended without an answer (cancelled): a probe may go again."""
        if self._state == State.HALF_OPEN:
            self._state = State.OPEN

    def failed(self, now: float) -> None:
        """A transient failure (refused, timed out, 4xx): opens the breaker after enough in a
        row, or at once when it was the half-open probe."""
        self._failures += 1
        if self._state == State.HALF_OPEN or self._failures >= self._settings.failures:
            self._state = State.OPEN
            self._opened_at = now


def parse_breaker(raw: object) -> dict[str, Any]:
    """When to stop trying a provider for a while: `failures` transient failures in a row
    open its breaker for `cool_down` seconds (`null`: the defaults)."""
    if raw is None:
        return {}
    body = require_object(raw, "breaker")
    reject_unknown(body, {"failures", "cool_down"}, "breaker.")
    return {
        "failures": get_int(body, "failures", prefix="breaker.", default=3, minimum=1, maximum=100),
        "cool_down": get_number(
            body, "cool_down", prefix="breaker.", default=30.0, minimum=0.1, maximum=3600
        ),
    }


def breaker_view(settings: dict[str, Any]) -> dict[str, Any]:
    """The stored breaker settings with the defaults filled in, as the API shows them."""
    defaults = BreakerSettings()
    shown = {"failures": defaults.failures, "cool_down": defaults.cool_down}
    return {**shown, **(settings.get("breaker") or {})}


def breaker_settings(settings: dict[str, Any]) -> BreakerSettings:
    """The typed breaker settings of a stored channel configuration."""
    return BreakerSettings(**(settings.get("breaker") or {}))
