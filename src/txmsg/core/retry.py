"""Retry policy for transient send failures: exponential backoff with full jitter."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    base_seconds: float = 1.0
    max_seconds: float = 300.0

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """Seconds to wait before attempt `attempt + 1` (attempt counts from 1)."""
        ceiling = min(self.max_seconds, self.base_seconds * (2 ** max(0, attempt - 1)))
        # Full jitter keeps many failing events from retrying in lockstep.
        return (rng or random).uniform(ceiling / 2, ceiling)
