"""A Starlette app on uvicorn in the running event loop: the fakes' HTTP servers."""

from __future__ import annotations

import asyncio

import uvicorn
from starlette.types import ASGIApp


class LoopServer:
    """`app` served on host:port (0: a free port, read back once started) until `stop()`."""

    def __init__(self, app: ASGIApp, host: str, port: int, name: str) -> None:
        config = uvicorn.Config(
            app, host=host, port=port, log_level="warning", access_log=False, lifespan="off"
        )
        self.name = name
        self.port = port
        self._server = uvicorn.Server(config)
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._server.serve())
        while not self._server.started:
            if self._task.done():
                self._task.result()  # raises why it could not start
                raise RuntimeError(f"the {self.name} stopped at start-up")
            await asyncio.sleep(0.005)
        self.port = self._server.servers[0].sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._task is not None:
            self._server.should_exit = True
            await self._task
            self._task = None
