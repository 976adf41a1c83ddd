"""A status-webhook receiver under uvicorn on loopback (fixture `receiver`, via conftest)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest_asyncio
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from helpers import wait_until

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
    """A webhook receiver: answers 500 to the first `failures` calls; `hold` makes it hang."""

    url: str = ""
    failures: int = 0
    calls: list[Call] = field(default_factory=list)
    hold: asyncio.Event | None = None

    async def endpoint(self, request: Request) -> Response:
        body = await request.body()
        if self.hold is not None:
            await self.hold.wait()
        status = 500 if self.failures > 0 else 204
        self.failures -= 1
        self.calls.append(Call(dict(request.headers), body, status))
        return Response(status_code=status)

    def delivered(self) -> list[dict[str, Any]]:
        return [c.json for c in self.calls if c.answered == 204]


@pytest_asyncio.fixture
async def receiver() -> AsyncIterator[Receiver]:
    rec = Receiver()
    app = Starlette(routes=[Route("/hook", rec.endpoint, methods=["POST"])])
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off")
    )
    task = asyncio.create_task(server.serve())
    await wait_until(lambda: server.started, what="the receiver started")
    rec.url = f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}/hook"
    try:
        yield rec
    finally:
        if rec.hold is not None:
            rec.hold.set()
        server.should_exit = True
        await task
