"""A circuit breaker per provider: closed, open for a cool-down, then one half-open probe.

After `failures` consecutive transient failures the breaker opens: sends skip the provider
until `cool_down` seconds have passed. Then one send is let through as a probe (half-open);
its success closes the breaker, its failure opens it for another cool-down. The state lives
in the process (each worker has its own breakers).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


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
