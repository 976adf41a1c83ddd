"""How long a request's body may take to arrive: a client that sends its headers and then
trickles (or never sends) the body it announced is answered 408 instead of holding its
connection and its request open for as long as it likes.

One sweeper a second cancels the reads past their deadline, rather than a timer per request:
`asyncio.timeout` would cost the trigger path about 4 us a request (of some 60), a deadline in
a dict under 1 us.
"""

from __future__ import annotations

import asyncio

from txmsg.core.errors import DomainError

_SWEEP_SECONDS = 1.0


class BodyTimeout(DomainError):
    def __init__(self, seconds: float) -> None:
        super().__init__(
            f"the request body did not arrive within {seconds:g} s", 408, "Request Timeout"
        )


class _Deadlines:
    """The reads of this event loop under way, each with its deadline (the loop's clock)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.reading: dict[asyncio.Task[object], float] = {}
        self.overdue: set[asyncio.Task[object]] = set()
        self._sweeper: asyncio.Task[None] | None = None

    def add(self, task: asyncio.Task[object], seconds: float) -> None:
        self.reading[task] = self.loop.time() + seconds
        if self._sweeper is None or self._sweeper.done():
            self._sweeper = self.loop.create_task(self._sweep(), name="txmsg-body-deadlines")

    async def _sweep(self) -> None:
        while self.reading:  # ends with the last read; the next read starts it again
            await asyncio.sleep(_SWEEP_SECONDS)
            now = self.loop.time()
            for task, deadline in list(self.reading.items()):
                if deadline <= now and task not in self.overdue:
                    self.overdue.add(task)
                    task.cancel("the request body's deadline passed")

    def passed(self, task: asyncio.Task[object]) -> bool:
        """Whether `task` was cancelled for its deadline (then no longer cancelled)."""
        if task not in self.overdue:
            return False
        task.uncancel()
        return True

    def end(self, task: asyncio.Task[object]) -> None:
        del self.reading[task]
        self.overdue.discard(task)


_LOOPS: dict[asyncio.AbstractEventLoop, _Deadlines] = {}


def start(seconds: float) -> tuple[asyncio.Task[object], _Deadlines]:
    """The current task's read of a body under way, due within `seconds`; the caller ends
    it (`end`) and, when cancelled, asks whether for its deadline (`passed`). A plain call
    rather than a context manager: the trigger path reads a body on every request."""
    task = asyncio.current_task()
    assert task is not None, "an ASGI app runs in a task"
    loop = task.get_loop()
    deadlines = _LOOPS.get(loop)
    if deadlines is None:
        for closed in [other for other in _LOOPS if other.is_closed()]:
            del _LOOPS[closed]
        deadlines = _LOOPS[loop] = _Deadlines(loop)
    deadlines.add(task, seconds)
    return task, deadlines
