"""Trigger cost per request, in process: the app called as ASGI, beside a bare Starlette app.

No network and no load generator: the figures are the apps' own CPU per request (event loop
plus the SQLite writer thread), so they move far less with machine noise than bench/trigger.py.
Use it to see what a change to the trigger path costs; use bench/trigger.py for the rate.

Triggers use a trigger key, as wrk's do, so its rate limiter is in the path (set far above the
rate). The engine's CPU is split between the event loop's thread and the others (the SQLite
writer: the insert, the commit and its fsync), read from /proc where there is one.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson
import uvloop

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[1] / "src"))

from bare_endpoint import app as bare_app
from txmsg.app import Role, create_app
from txmsg.config import Settings
from txmsg.core.rate_limit import KeyLimit

ADMIN = "bench-admin-key-0123456789"


async def call(app: Any, method: str, path: str, body: bytes, auth: bytes) -> tuple[int, bytes]:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "scheme": "http",
        "server": ("127.0.0.1", 80),
        "client": ("127.0.0.1", 1234),
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"authorization", b"Bearer " + auth),
        ],
        "app": app,
    }
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.Event().wait()  # never: the apps read one message
        return {"type": "http.disconnect"}

    status, chunks = 0, []

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        else:
            chunks.append(message.get("body", b""))

    await app(scope, receive, send)
    return status, b"".join(chunks)


def _main_thread_cpu() -> float:
    """CPU seconds of this (the event loop's) thread; 0 where /proc is missing."""
    try:
        with open(f"/proc/self/task/{os.getpid()}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def measure(
    app: Any, bodies: list[bytes], concurrency: int, key: str = ADMIN
) -> tuple[float, float, float]:
    """(wall, CPU, CPU of the event loop's thread) microseconds per request; every answer
    must be a 201."""
    queue = iter(bodies)

    async def worker() -> None:
        for body in queue:
            status, answer = await call(app, "POST", "/rest/mc/EVTbench", body, key.encode())
            assert status == 201, answer

    wall, cpu, loop_cpu = time.perf_counter(), time.process_time(), _main_thread_cpu()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    n = len(bodies)
    return (
        (time.perf_counter() - wall) / n * 1e6,
        (time.process_time() - cpu) / n * 1e6,
        (_main_thread_cpu() - loop_cpu) / n * 1e6,
    )


async def main(count: int, concurrency: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            data_dir=Path(tmp),
            admin_key=ADMIN,
            # Far above the rate: every trigger spends a token, none is refused.
            trigger_rate_limit=KeyLimit(1_000_000, 1_000_000),
        )
        app = create_app(settings, role=Role.API)
        async with app.router.lifespan_context(app):
            setup = [
                (
                    "/api/v1/channel-configs",
                    {
                        "name": "m",
                        "channel": "email",
                        "from_email": "shop@example.com",
                        "smtp": {"host": "127.0.0.1", "port": 25},
                    },
                ),
                (
                    "/api/v1/event-configs",
                    {
                        "eventId": "bench",
                        "channel": "email",
                        "channel_config": "m",
                        "fields": [{"name": "firstName", "type": "string", "required": True}],
                    },
                ),
                ("/api/v1/event-configs/EVTbench/publish", None),
            ]
            for path, body in setup:
                status, answer = await call(
                    app, "POST", path, orjson.dumps(body) if body else b"", ADMIN.encode()
                )
                assert status in (200, 201), answer
            status, answer = await call(
                app,
                "POST",
                "/api/v1/keys",
                b'{"role": "trigger", "label": "bench"}',
                ADMIN.encode(),
            )
            assert status == 201, answer
            key = str(orjson.loads(answer)["key"])
            bodies = [
                orjson.dumps({"email": f"user{i}@example.org", "ctx": {"firstName": "Ada"}})
                for i in range(count)
            ]
            await measure(bare_app, bodies[:500], concurrency)  # warm-up
            await measure(app, bodies[:500], concurrency, key)
            base_wall, base_cpu, _ = await measure(bare_app, bodies, concurrency)
            wall, cpu, loop_cpu = await measure(app, bodies, concurrency, key)
    print(
        f"bare Starlette app    {base_wall:7.1f} us/request wall  {base_cpu:7.1f} us CPU  "
        "(baseline)"
    )
    print(
        f"txmsg trigger         {wall:7.1f} us/request wall  {cpu:7.1f} us CPU  "
        f"ratio (baseline/txmsg CPU) {base_cpu / cpu:.2f}"
    )
    others = cpu - loop_cpu
    print(f"  of which the event loop's thread {loop_cpu:7.1f} us, other threads {others:.1f} us")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    uvloop.run(main(args.count, args.concurrency))
