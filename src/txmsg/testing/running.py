"""What the fakes share: `start()` and `stop()`, `async with` doing both, and the error of a
`wait_for` that timed out."""

from __future__ import annotations

from types import TracebackType
from typing import Self


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
