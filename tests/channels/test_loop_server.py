"""The fakes' HTTP server (`txmsg.testing.http.LoopServer`): prompt to start and stop in the
test's event loop, and a stop closes every connection and leaves no task behind."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest

from txmsg.testing.http import LoopServer

REQUEST = b"GET / HTTP/1.1\r\nHost: test\r\n\r\n"


async def hello(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """An ASGI app answering `hello`, after the `?delay=` seconds of its query string."""
    query = scope["query_string"].decode()
    if query.startswith("delay="):
        await asyncio.sleep(float(query[6:]))
    if query == "body":  # reads the whole body first: a client sending less makes it wait
        while (await receive()).get("more_body"):
            pass
    headers = [(b"content-length", b"5")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": b"hello"})


async def open_connection(server: LoopServer) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", server.port)


async def test_a_stop_closes_idle_connections_at_once_and_leaves_no_task() -> None:
    before = asyncio.all_tasks()
    server = LoopServer(hello)
    await server.start()
    assert server.port != 0
    reader, writer = await open_connection(server)
    writer.write(REQUEST)
    head = await reader.readuntil(b"hello")  # answered, and the connection is kept alive
    assert head.startswith(b"HTTP/1.1 200 ")
    began = asyncio.get_running_loop().time()
    await server.stop()
    # uvicorn's own stop sleeps at least 0.2 s; this one takes well under a millisecond, the
    # margin is for a loaded machine.
    assert asyncio.get_running_loop().time() - began < 0.19
    assert await reader.read() == b""  # closed by the server
    writer.close()
    assert asyncio.all_tasks() == before


async def test_a_request_in_flight_at_the_stop_is_answered_then_closed() -> None:
    async with LoopServer(hello) as server:
        reader, writer = await open_connection(server)
        writer.write(b"GET /?delay=0.2 HTTP/1.1\r\nHost: test\r\n\r\n")
        await asyncio.sleep(0.05)  # under way
        await server.stop()
        answer = await reader.read()  # the whole answer, then the end of the connection
        assert answer.startswith(b"HTTP/1.1 200 ") and answer.endswith(b"hello")
        writer.close()


async def test_a_request_that_never_ends_is_cut_off_after_the_grace() -> None:
    server = LoopServer(hello, timeout_graceful_shutdown=0.2)
    await server.start()
    reader, writer = await open_connection(server)
    # 10 bytes announced, 2 sent: the app waits for the rest, which never comes.
    writer.write(b"POST /?body HTTP/1.1\r\nHost: test\r\nContent-Length: 10\r\n\r\nab")
    await asyncio.sleep(0.05)
    began = asyncio.get_running_loop().time()
    await server.stop()
    assert 0.2 <= asyncio.get_running_loop().time() - began < 2.0
    assert await reader.read() == b""  # closed, not answered
    writer.close()
    assert not server.server_state.tasks


async def test_a_port_in_use_raises_in_start_and_the_loop_goes_on() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        server = LoopServer(hello, port=taken.getsockname()[1], name="fake server")
        with pytest.raises(OSError, match="address already in use"):
            await server.start()
    await server.stop()  # nothing started: nothing to do
    await asyncio.sleep(0)  # uvicorn's sys.exit() would have ended the loop
