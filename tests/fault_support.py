"""A loopback TCP proxy that can be cut and restored, or silenced: a database (or provider)
going away, or no longer answering on connections that stay open."""

from __future__ import annotations

import asyncio
import contextlib


class TcpProxy:
    """Forwards 127.0.0.1:`port` to (host, target_port) while up; `cut()` closes the listener
    and every connection (the peer sees them reset or refused), `restore()` listens again on
    the same port."""

    def __init__(self, host: str, target_port: int) -> None:
        self.host = host
        self.target_port = target_port
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        # Silenced: what either side sends is dropped, new connections are taken and never
        # forwarded, and no connection is closed (a network cut that drops packets, or a
        # server that hangs: the peer's bytes are taken and no answer comes).
        self.silent = False

    async def silence(self) -> None:
        self.silent = True

    async def speak(self) -> None:
        """No longer silenced: what is sent from now on is forwarded (what was dropped stays
        lost: a connection that sent meanwhile is out of step, as after a real cut)."""
        self.silent = False

    async def restore(self) -> None:
        self._server = await asyncio.start_server(self._pipe, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def cut(self) -> None:
        if self._server is None:
            return  # cut already
        self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()
        await self._server.wait_closed()
        self._server = None

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.silent:
            self._writers.add(writer)
            await self._drop(reader)
            self._writers.discard(writer)
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(self.host, self.target_port)
        except OSError:
            writer.transport.abort()
            return
        self._writers |= {writer, up_writer}
        await asyncio.gather(
            self._copy(reader, up_writer), self._copy(up_reader, writer), return_exceptions=True
        )
        self._writers -= {writer, up_writer}

    @staticmethod
    async def _drop(reader: asyncio.StreamReader) -> None:
        with contextlib.suppress(OSError):
            while await reader.read(65536):
                pass

    async def _copy(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                if self.silent:
                    continue
                writer.write(data)
                await writer.drain()
        except OSError:  # one side went away (or was cut): the pipe ends, both sides close
            return
        finally:
            writer.transport.abort()
