"""Request bodies: size-limited, JSON-parsed, errors as problems (never a 500)."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request

from txmsg.api.context import context
from txmsg.core.errors import DomainError


def _too_large(limit: int) -> DomainError:
    return DomainError(
        f"the request body is larger than the limit of {limit} bytes", 413, "Content Too Large"
    )


async def read_body(request: Request) -> bytes:
    limit = context(request).settings.max_body_bytes
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit():
        if int(declared) > limit:
            raise _too_large(limit)
        return await request.body()  # the server never reads past Content-Length
    # Chunked: count as it streams in, stop at the limit.
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


async def read_json(request: Request, *, optional: bool = False) -> Any:
    raw = await read_body(request)
    if not raw.strip():
        if optional:
            return None
        raise DomainError("a JSON request body is required", 400)
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise DomainError(f"the request body is not valid JSON: {exc}", 400) from None
