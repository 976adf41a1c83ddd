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
it. With no transactional traffic the gate costs a bulk send nothing.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable


class BulkGate:
    def __init__(self, trickle: float, on_open: Callable[[], None] = lambda: None) -> None:
        self._trickle = trickle
        self._on_open = on_open  # the claimer's wake-up: bulk claims may go on
        self._urgent = 0  # transactional events being accepted or sent here
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._timer: asyncio.TimerHandle | None = None

    @property
    def closed(self) -> bool:
        """Bulk work waits: a transactional event is on its way."""
        return self._urgent > 0

    def hold(self, count: int = 1) -> None:
        """`count` more transactional events are on their way here."""
        if count > 0:
            self._urgent += count

    def let_go(self, count: int = 1) -> None:
        """`count` transactional events are done here (sent, failed, queued, or left to their
        lease): the gate opens when none is left."""
        if count <= 0:
            return
        if count > self._urgent:
            raise RuntimeError("let go of more transactional events than were held")
        self._urgent -= count
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
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self._trickle, self._drip)
        await future  # a cancelled waiter is skipped by the trickle

    def _drip(self) -> None:
        """One waiting bulk step through the closed gate; again after `trickle` while any
        waits."""
        self._timer = None
        while self._waiters:
            if _admit(self._waiters.popleft()):
                break
        if self._waiters:
            self._timer = asyncio.get_running_loop().call_later(self._trickle, self._drip)


def _admit(future: asyncio.Future[None]) -> bool:
    if future.done():  # cancelled meanwhile
        return False
    future.set_result(None)
    return True
