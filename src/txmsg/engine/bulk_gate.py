"""The bulk gate: bulk sends pause while a transactional event is on its way.

Priority at each shared wait (claims, renders, SMTP connections) is not enough on its own: a
transactional send also waits for the event loop, the render workers and the write funnel,
and those are busy with whatever bulk sends are under way (a claim's worth of renders coming
back at once, each then building its message on the loop). While a transactional trigger is
being accepted or sent in this process the gate is closed: bulk sends stop at their next
checkpoint (before rendering, before building and sending, before recording the outcome), so
the transactional one finds the loop and the cores nearly free.

A closed gate still lets one waiting bulk step through every `trickle` seconds, in order of
arrival: a steady stream of transactional triggers slows bulk work to that pace, never stops
it. With no transactional traffic the gate costs a bulk send nothing. And it only stays closed
while transactional events move: once none was held or let go for `patience` seconds (a send
stuck on a hung SMTP server, say, until its timeout), bulk work goes on; the next
transactional event closes it again.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable

PATIENCE = 1.0


class BulkGate:
    def __init__(
        self,
        trickle: float,
        on_open: Callable[[], None] = lambda: None,
        *,
        patience: float = PATIENCE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._trickle = trickle
        self._on_open = on_open  # the claimer's wake-up: bulk claims may go on
        self._patience = patience
        self._clock = clock
        self._urgent = 0  # transactional events being accepted or sent here
        self._moved = clock()  # when one was last held or let go
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._timer: asyncio.TimerHandle | None = None

    @property
    def closed(self) -> bool:
        """Bulk work waits: a transactional event is on its way, and they moved lately."""
        return self._urgent > 0 and self._clock() - self._moved < self._patience

    def hold(self, count: int = 1) -> None:
        """`count` more transactional events are on their way here."""
        if count > 0:
            self._urgent += count
            self._moved = self._clock()

    def let_go(self, count: int = 1) -> None:
        """`count` transactional events are done here (sent, failed, queued, or left to their
        lease): the gate opens when none is left."""
        if count <= 0:
            return
        if count > self._urgent:
            raise RuntimeError("let go of more transactional events than were held")
        self._urgent -= count
        self._moved = self._clock()
        if self._urgent == 0:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            while self._waiters:
                _admit(self._waiters.popleft())
            self._on_open()

    async def turn(self) -> None:
        """A bulk send's checkpoint: at once while open, else its turn of the trickle (or
        the gate's opening)."""
        if not self.closed:
            return
        future = asyncio.get_running_loop().create_future()
        self._waiters.append(future)
        self._arm()
        await future  # a cancelled waiter is skipped by the trickle

    def _arm(self) -> None:
        """The next drip: the trickle's turn, or the moment the gate goes stale if sooner."""
        if self._timer is None:
            stale_in = self._patience - (self._clock() - self._moved)
            delay = max(0.0, min(self._trickle, stale_in))
            self._timer = asyncio.get_running_loop().call_later(delay, self._drip)

    def _drip(self) -> None:
        """One waiting bulk step through the closed gate (all of them once it went stale);
        again later while any waits."""
        self._timer = None
        if not self.closed:  # no transactional event moved for `patience`
            while self._waiters:
                _admit(self._waiters.popleft())
            self._on_open()
            return
        while self._waiters:
            if _admit(self._waiters.popleft()):
                break
        if self._waiters:
            self._arm()


def _admit(future: asyncio.Future[None]) -> bool:
    if future.done():  # cancelled meanwhile
        return False
    future.set_result(None)
    return True
