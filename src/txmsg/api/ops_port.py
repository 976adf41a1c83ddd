"""The ops port: `/health`, `/ready` and `/metrics` on an address of their own, without a key.

For a worker (which has no HTTP API) and for `txmsg serve --metrics-port`: a supervisor, a
load balancer or Prometheus reach it, the public API stays keyed. A minimal HTTP/1.1 responder
(one request per connection) on the process's event loop.

`serve --processes N --metrics-port P`: each process takes the first free port of P to P+N-1
(a port serves one process's figures), so Prometheus scrapes those N ports.
"""

from __future__ import annotations

import asyncio
import errno
import logging
from dataclasses import dataclass

import orjson

from txmsg.api.probes import Probe, metrics_text, readiness
from txmsg.metrics import CONTENT_TYPE
from txmsg.store.outage import is_unavailable
from txmsg.store.startup_errors import cannot_listen

log = logging.getLogger(__name__)

MAX_REQUEST_LINE = 8192

_REASONS = {
    200: b"OK",
    404: b"Not Found",
    405: b"Method Not Allowed",
    500: b"Internal Server Error",
    503: b"Service Unavailable",
}
PATHS = (b"/health", b"/ready", b"/metrics")


async def _answer_or_error(probe: Probe, path: bytes) -> tuple[int, str, bytes]:
    """The answer; an error answered too (503 for the database unavailable, else 500 and
    logged with its traceback), never a connection dropped without one."""
    try:
        return await _answer(probe, path)
    except Exception as exc:
        if is_unavailable(exc):
            log.warning(
                "ops port: %s answered 503: the database is unavailable",
                path.decode(errors="replace"),
            )
            return 503, "application/json", b'{"title":"Service Unavailable","status":503}'
        log.exception("ops port: %s failed", path.decode(errors="replace"))
        return 500, "application/json", b'{"title":"Internal Server Error","status":500}'


async def _answer(probe: Probe, path: bytes) -> tuple[int, str, bytes]:
    if path == b"/health":
        return 200, "application/json", b'{"status":"ok"}'
    if path == b"/ready":
        ok, body = await readiness(probe)
        return (200 if ok else 503), "application/json", orjson.dumps(body)
    if path == b"/metrics":
        return 200, CONTENT_TYPE, await metrics_text(probe)
    return 404, "application/json", b'{"title":"Not Found","status":404}'


@dataclass(frozen=True, slots=True)
class OpsAddress:
    """Where the ops port listens: `port`, or with `count` the first free of that many ports
    from `port` (one for each of `serve --processes N`'s processes)."""

    host: str
    port: int
    count: int = 1

    def __str__(self) -> str:
        last = self.port + self.count - 1
        return f"{self.host}:{self.port}" + (f"-{last}" if self.count > 1 else "")


async def start_ops_port(probe: Probe, address: OpsAddress) -> asyncio.Server:
    """Serve the probes on the address's first free port until the returned server is closed;
    OSError (address in use) when none is free."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request_line = await reader.readline()
            while (await reader.readline()).strip():  # the headers: not needed
                pass
            parts = request_line[:MAX_REQUEST_LINE].split()
            method, path = (parts[0], parts[1].split(b"?")[0]) if len(parts) >= 2 else (b"", b"")
            allow = b""
            if method in (b"GET", b"HEAD"):
                status, media, body = await _answer_or_error(probe, path)
            elif path in PATHS:  # a probe sent with the wrong method: say which ones work
                status, media, body = 405, "application/json", b'{"status":405}'
                allow = b"allow: GET, HEAD\r\n"
            else:
                status, media, body = 404, "application/json", b'{"status":404}'
            writer.write(
                b"HTTP/1.1 %d %s\r\ncontent-type: %s\r\ncontent-length: %d\r\n%s"
                b"connection: close\r\n\r\n"
                % (status, _REASONS[status], media.encode(), len(body), allow)
                + (b"" if method == b"HEAD" else body)
            )
            await writer.drain()
        except (ConnectionError, ValueError):
            log.debug("an ops-port client hung up or sent an over-long line")
        finally:
            writer.close()

    last = address.port + address.count - 1
    port = address.port
    while True:
        try:
            server = await asyncio.start_server(serve, address.host, port, limit=MAX_REQUEST_LINE)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE and port < last:
                port += 1  # a sibling process holds it: the next one
                continue
            raise cannot_listen(f"ops port {address}", exc) from exc
        # One line, for one process too: where to point a probe (no key is logged: none).
        log.info("health, readiness and metrics on %s:%d", address.host, port)
        return server
