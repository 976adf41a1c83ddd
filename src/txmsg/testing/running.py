"""What the fakes share: `start()` and `stop()`, and `async with` doing both."""

from __future__ import annotations

from types import TracebackType
from typing import Self


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
