"""Retry policy for transient send failures: exponential backoff with jitter."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    base_seconds: float = 1.0
    max_seconds: float = 300.0

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """Seconds to wait before attempt `attempt + 1` (attempt counts from 1)."""
        exponent = min(max(0, attempt - 1), 60)  # 2**60 s is past any cap; no float overflow
        ceiling = min(self.max_seconds, self.base_seconds * (2**exponent))
        # Jitter (half to all of the step) keeps failing events from retrying in lockstep.
        return (rng or random).uniform(ceiling / 2, ceiling)
