"""A status-webhook receiver under uvicorn on loopback (fixture `receiver`, via conftest)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest_asyncio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from txmsg.testing.http import LoopServer

SECRET = "s3cret-for-the-receiver"


@dataclass
class Call:
    headers: dict[str, str]
    body: bytes
    answered: int

    @property
    def json(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.body)
        return data


@dataclass
class Receiver:
    """A webhook receiver: answers 500 to the first `failures` attempts of each call, lets the
    first `hangs` attempts of each call wait past the sender's timeout; `hold` makes it hang."""

    url: str = ""
    failures: int = 0
    hangs: int = 0
    calls: list[Call] = field(default_factory=list)
    arrivals: dict[int, list[float]] = field(default_factory=dict)  # call id -> attempt times
    hold: asyncio.Event | None = None
    closing: asyncio.Event = field(default_factory=asyncio.Event)

    async def endpoint(self, request: Request) -> Response:
        body = await request.body()
        call_id = json.loads(body)["id"]
        attempts = self.arrivals.setdefault(call_id, [])
        attempts.append(time.monotonic())
        if self.hold is not None:
            await self.hold.wait()
        if len(attempts) <= self.hangs:
            await self.closing.wait()  # the sender gives up first (its timeout)
        status = 500 if len(attempts) <= self.hangs + self.failures else 204
        self.calls.append(Call(dict(request.headers), body, status))
        return Response(status_code=status)

    def delivered(self) -> list[dict[str, Any]]:
        """The calls answered 2xx, in the order they were made (by id)."""
        return sorted((c.json for c in self.calls if c.answered == 204), key=lambda d: d["id"])

    def statuses(self, pkey: str) -> list[str]:
        return [d["status"] for d in self.delivered() if d["PKey"] == pkey and d["status"]]


@asynccontextmanager
async def serving() -> AsyncIterator[Receiver]:
    """A receiver under uvicorn on loopback (a test wanting two starts the second itself)."""
    rec = Receiver()
    app = Starlette(routes=[Route("/hook", rec.endpoint, methods=["POST"])])
    server = LoopServer(app, name="webhook receiver")
    await server.start()
    rec.url = f"http://127.0.0.1:{server.port}/hook"
    try:
        yield rec
    finally:
        if rec.hold is not None:
            rec.hold.set()
        rec.closing.set()
        await server.stop()


@pytest_asyncio.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with serving() as rec:
        yield rec
