"""Request bodies: size-limited, JSON-parsed, errors as problems (never a 500)."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request

from txmsg.api.context import context
from txmsg.core.errors import DomainError

_EMPTY = object()


async def read_body(request: Request) -> bytes:
    limit = context(request).settings.max_body_bytes
    too_large = DomainError(
        f"the request body is larger than the limit of {limit} bytes", 413, "Content Too Large"
    )
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_large
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large
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
