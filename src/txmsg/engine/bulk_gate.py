"""The bulk gate: bulk sends pause while a transactional event is on its way.

Priority at each shared wait (claims, renders, SMTP connections) is not enough on its own: a
transactional send also waits for the event loop, the render workers and the write funnel,
and those are busy with whatever bulk sends are under way (a claim's worth of renders coming
back at once, each then building its message on the loop). While a transactional trigger is
being accepted or sent in this process the gate is closed: bulk sends stop at their next
checkpoint (before rendering, before building and sending) and bulk claims wait, so the
transactional one finds the loop and the cores nearly free.

A closed gate opens when no transactional event is left, and at the latest `max_pause`
seconds after it closed (then it stays open until the transactional traffic stops once):
a steady stream of transactional triggers slows bulk work, never stops it. With no
transactional traffic the gate costs a bulk send nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable


class BulkGate:
    def __init__(self, max_pause: float, on_open: Callable[[], None] = lambda: None) -> None:
        self._max_pause = max_pause
        self._on_open = on_open  # the claimer's wake-up: bulk claims may go on
        self._urgent = 0  # transactional events being accepted or sent here
        self._overdue = False  # closed for max_pause already: open until urgent is 0
        self._timer: asyncio.TimerHandle | None = None
        self._opened: asyncio.Future[None] | None = None  # what paused bulk sends wait for

    @property
    def closed(self) -> bool:
        """Bulk work waits: a transactional event is on its way (for at most max_pause)."""
        return self._urgent > 0 and not self._overdue

    def hold(self, count: int = 1) -> None:
        """`count` more transactional events are on their way here."""
        if count <= 0:
            return
        if self._urgent == 0:
            self._timer = asyncio.get_running_loop().call_later(self._max_pause, self._overtime)
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
            was_closed = not self._overdue
            self._overdue = False
            if was_closed:
                self._open()

    async def turn(self) -> None:
        """A bulk send's checkpoint: at once while open, else once the gate opens."""
        if not self.closed:
            return
        if self._opened is None:
            self._opened = asyncio.get_running_loop().create_future()
        await asyncio.shield(self._opened)  # one waiter cancelled cancels no other

    def _overtime(self) -> None:
        self._timer = None
        self._overdue = True
        self._open()

    def _open(self) -> None:
        opened, self._opened = self._opened, None
        if opened is not None and not opened.done():
            opened.set_result(None)
        self._on_open()
