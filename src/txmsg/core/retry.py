"""Retry policy for transient send failures: exponential backoff with jitter."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime

from txmsg.core.validation import ascii_digits

# A provider's Retry-After is honoured up to this (a longer one is a provider's mistake).
MAX_RETRY_AFTER_SECONDS = 3600.0


def retry_after_seconds(value: str | None, now: datetime) -> float | None:
    """A Retry-After header (seconds or an HTTP date) as seconds from `now`, within
    [0, MAX_RETRY_AFTER_SECONDS]; None when absent or unreadable."""
    if not value:
        return None
    text = value.strip()
    if ascii_digits(text):
        seconds = float(text[:8])
    else:
        try:
            seconds = (parsedate_to_datetime(text) - now).total_seconds()
        except (TypeError, ValueError):
            return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_SECONDS)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    base_seconds: float = 1.0
    max_seconds: float = 300.0

    def delay(
        self, attempt: int, rng: random.Random | None = None, at_least: float | None = None
    ) -> float:
        """Seconds to wait before attempt `attempt + 1` (attempt counts from 1); no less than
        `at_least` (the provider's Retry-After) when given."""
        if at_least is not None:
            return max(at_least, self._backoff(attempt, rng))
        return self._backoff(attempt, rng)

    def _backoff(self, attempt: int, rng: random.Random | None) -> float:
        exponent = min(max(0, attempt - 1), 60)  # 2**60 s is past any cap; no float overflow
        ceiling = min(self.max_seconds, self.base_seconds * (2**exponent))
        # Jitter (half to all of the step) keeps failing events from retrying in lockstep.
        return (rng or random).uniform(ceiling / 2, ceiling)
