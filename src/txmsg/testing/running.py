"""What the fakes share: `start()` and `stop()`, `async with` doing both, the record of what a
fake accepted with its `wait_for`, and the error of a `wait_for` that timed out."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from types import TracebackType
from typing import Generic, Self, TypeVar

T = TypeVar("T")


class WaitTimeout(TimeoutError, AssertionError):
    """A fake's `wait_for` saw fewer messages than asked within its time: a TimeoutError, and
    an AssertionError (a failed expectation, as pytest reports it)."""


class Running:
    """A server run from `start()` to `stop()`, or for the body of an `async with`."""

    async def start(self) -> None:
        raise NotImplementedError

    async def stop(self) -> None:
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()


class Recorder(Running, Generic[T]):
    """A fake server that records what it accepts in `messages`, oldest first."""

    def __init__(self) -> None:
        self.messages: list[T] = []
        # Called with each accepted message (the runnable fakes print it).
        self.on_message: Callable[[T], None] | None = None
        self._arrived = asyncio.Event()

    async def wait_for(self, count: int, timeout: float = 10.0) -> list[T]:
        """Wait until at least `count` messages were accepted; return them all."""
        try:
            async with asyncio.timeout(timeout):
                while len(self.messages) < count:
                    self._arrived.clear()
                    await self._arrived.wait()
        except TimeoutError:
            raise WaitTimeout(
                f"expected {count} message(s) within {timeout}s, "
                f"but {len(self.messages)} arrived{self._summary()}"
            ) from None
        return list(self.messages)

    def clear(self) -> None:
        """Forget the messages accepted so far."""
        self.messages.clear()

    def _begin_run(self) -> None:
        """What `start()` does first: each run begins with nothing recorded (the previous
        run's list is left as it was to whoever holds it), and with an Event of the loop that
        starts it (a fake may serve one test's loop, then another's)."""
        self.messages = []
        self._arrived = asyncio.Event()

    def _record(self, message: T) -> None:
        self.messages.append(message)
        self._arrived.set()
        if self.on_message is not None:
            self.on_message(message)

    def _summary(self) -> str:
        """What a timed-out wait adds after its count: what the fake refused, say."""
        return ""
