"""The baseline: a bare Starlette JSON endpoint under uvicorn (uvloop + httptools)."""

from __future__ import annotations

import sys

import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


async def endpoint(request: Request) -> Response:
    body = orjson.loads(await request.body())
    return Response(
        orjson.dumps({"status": "pending", "echo": body}),
        status_code=201,
        media_type="application/json",
    )


app = Starlette(routes=[Route("/rest/mc/{eventId}", endpoint, methods=["POST"])])

if __name__ == "__main__":
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=int(sys.argv[1]),
        loop="uvloop",
        http="httptools",
        log_level="warning",
        access_log=False,
    )
