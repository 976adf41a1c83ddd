"""An ASGI app on uvicorn in the running event loop: the fakes' HTTP servers.

uvicorn's `Server` is made to own its process: its main loop looks at `should_exit` every
0.1 s, its shutdown sleeps 0.1 s and then looks at the open connections every 0.1 s, its
`serve()` takes SIGINT and SIGTERM for itself while it runs, and a start that fails is a
`sys.exit()`, which ends the whole event loop. `LoopServer` serves in a loop that belongs to
someone else (a test, a fake's runner): `stop()` returns as soon as the connections are
closed, signals stay with the loop's owner, and a start that fails raises in `start()`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from typing import Any

import uvicorn
from starlette.types import ASGIApp

from txmsg.testing.running import Running

# How long a stop lets the requests under way finish before it closes their connections.
GRACE_SECONDS = 5.0
# Seconds between a stopping server's looks at its connections (uvicorn has no event for them).
CLOSE_CHECK = 0.005
TICK = 0.1  # uvicorn's main loop: the Date header is refreshed every 10th tick

log = logging.getLogger(__name__)


class LoopServer(uvicorn.Server, Running):
    """`app` served on host:port (0: a free port, read back once started) from `start()` to
    `stop()`, or as `async with`. `config` adds or overrides uvicorn.Config's options (the
    app's lifespan is not run unless `lifespan="on"`)."""

    def __init__(
        self,
        app: ASGIApp,
        host: str = "127.0.0.1",
        port: int = 0,
        name: str = "server",
        **config: Any,
    ) -> None:
        options: dict[str, Any] = {
            "log_level": "warning",
            "access_log": False,
            "lifespan": "off",
            "timeout_graceful_shutdown": GRACE_SECONDS,
            **config,
        }
        super().__init__(uvicorn.Config(app, host=host, port=port, **options))
        self.name = name
        self.port = port
        self._exit_asked = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Listen (the app's lifespan started first, if on); raises when it cannot."""
        if not self.config.loaded:
            self.config.load()
        self.lifespan = self.config.lifespan_class(self.config)
        await self.startup()
        self.port = self.servers[0].sockets[0].getsockname()[1]
        self._task = asyncio.create_task(self._run(), name=f"the {self.name}")

    async def stop(self) -> None:
        """Stop listening, close each connection once its answer is out, then return."""
        if self._task is None:
            return
        self.should_exit = True
        self._exit_asked.set()
        task, self._task = self._task, None
        await task

    async def _run(self) -> None:
        await self.main_loop()
        await self.shutdown()

    # -- uvicorn's steps, without its fixed waits -------------------------------------------

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        try:
            await super().startup(sockets)
        except SystemExit as exc:  # uvicorn logged why; the loop is not its to end
            reason = exc.__context__
            if isinstance(reason, OSError):  # e.g. the port is taken
                raise reason from None
            raise RuntimeError(f"the {self.name} could not start") from None

    async def main_loop(self) -> None:
        counter = 0
        while not await self.on_tick(counter):
            counter = (counter + 1) % 864000
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(TICK):
                    await self._exit_asked.wait()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for server in self.servers:
            server.close()
        state = self.server_state
        loop = asyncio.get_running_loop()
        grace = self.config.timeout_graceful_shutdown
        deadline = None if grace is None else loop.time() + grace
        wait = 0.0  # the first look: the idle connections closed by then
        while state.connections or state.tasks:
            if deadline is not None and loop.time() >= deadline:
                await self._cut_off()
                break
            # An idle connection closes now, a busy one once its answer is out. Asked again
            # each time: uvicorn would ask only those open when the stop began, and one
            # accepted just then would hold the stop for its keep-alive (5 s).
            for connection in list(state.connections):
                connection.shutdown()
            await asyncio.sleep(wait)
            wait = CLOSE_CHECK
        for server in self.servers:
            await server.wait_closed()
        await self.lifespan.shutdown()

    async def _cut_off(self) -> None:
        """Past the grace: close the connections still open, cancel what still runs."""
        state = self.server_state
        log.warning(
            "the %s closes %d connection(s) still busy after %s s",
            self.name,
            len(state.connections),
            self.config.timeout_graceful_shutdown,
        )
        for connection in list(state.connections):
            connection.transport.close()  # the app reads a disconnect
        tasks = list(state.tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
