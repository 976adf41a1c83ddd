"""A Starlette app on uvicorn in the running event loop: the fakes' HTTP servers."""

from __future__ import annotations

import asyncio

import uvicorn
from starlette.types import ASGIApp

CLOSE_CHECK = 0.05  # seconds between the stopping server's calls to close idle connections


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
        if self._task is None:
            return
        self._server.should_exit = True
        # uvicorn tells the connections open when it begins to stop to close once idle; one
        # a client opened just then is not told, and its keep-alive (5 s) would hold the stop.
        while not self._task.done():
            for connection in list(self._server.server_state.connections):
                connection.shutdown()
            await asyncio.wait({self._task}, timeout=CLOSE_CHECK)
        task, self._task = self._task, None
        await task
