"""What the dispatcher needs of the write funnel, written down as an interface.

The dispatcher records outcomes, reserves fatigue budgets and asks for claim cycles through the
writer (writer.py), which satisfies this protocol structurally: the dispatcher does not import the
writer, and the app factory passes the one it made.
"""

from __future__ import annotations

from typing import Protocol

from txmsg.core.fatigue import FatigueCheck
from txmsg.core.queue import Outcome
from txmsg.store.queue.cycle import Decisions


class WriteFunnel(Protocol):
    async def tick(self) -> None:
        """Run a write cycle even with nothing to write: claims due events, renews leases."""
        ...

    async def record(self, outcome: Outcome) -> None:
        """Record a send's outcome; returns once committed."""
        ...

    async def reserve(self, check: FatigueCheck) -> Decisions:
        """Evaluate fatigue rules and reserve the sends they allow, in one transaction."""
        ...
