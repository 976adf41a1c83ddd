"""The ops port: `/health`, `/ready` and `/metrics` on an address of their own, without a key.

For a worker (which has no HTTP API) and for `txmsg serve --metrics-port`: a supervisor, a
load balancer or Prometheus reach it, the public API stays keyed. A minimal HTTP/1.1 responder
(one request per connection) on the process's event loop.
"""

from __future__ import annotations

import asyncio
import logging

import orjson

from txmsg.api.probes import Probe, metrics_text, readiness
from txmsg.metrics import CONTENT_TYPE

log = logging.getLogger(__name__)

MAX_REQUEST_LINE = 8192

_REASONS = {200: b"OK", 404: b"Not Found", 503: b"Service Unavailable"}


async def _answer(probe: Probe, path: bytes) -> tuple[int, str, bytes]:
    if path == b"/health":
        return 200, "application/json", b'{"status":"ok"}'
    if path == b"/ready":
        ok, body = await readiness(probe)
        return (200 if ok else 503), "application/json", orjson.dumps(body)
    if path == b"/metrics":
        return 200, CONTENT_TYPE, await metrics_text(probe)
    return 404, "application/json", b'{"title":"Not Found","status":404}'


async def start_ops_port(probe: Probe, port: int, host: str = "127.0.0.1") -> asyncio.Server:
    """Serve the probes on host:port until the returned server is closed."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request_line = await reader.readline()
            while (await reader.readline()).strip():  # the headers: not needed
                pass
            parts = request_line[:MAX_REQUEST_LINE].split()
            if len(parts) >= 2 and parts[0] == b"GET":
                status, media, body = await _answer(probe, parts[1].split(b"?")[0])
            else:
                status, media, body = 404, "application/json", b'{"status":404}'
            writer.write(
                b"HTTP/1.1 %d %s\r\ncontent-type: %s\r\ncontent-length: %d\r\n"
                b"connection: close\r\n\r\n"
                % (status, _REASONS[status], media.encode(), len(body))
                + body
            )
            await writer.drain()
        except (ConnectionError, ValueError):
            log.debug("an ops-port client hung up or sent an over-long line")
        finally:
            writer.close()

    return await asyncio.start_server(serve, host, port, limit=MAX_REQUEST_LINE)
