"""Request bodies: size-limited, JSON-parsed, errors as problems (never a 500)."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from starlette.requests import Request
from starlette.types import Receive

from txmsg.api import body_deadlines
from txmsg.api.context import context
from txmsg.core.errors import DomainError, invalid
from txmsg.core.json_numbers import check_integers, read_with_long_integers_as_text
from txmsg.core.validation import ascii_digits


def _too_large(limit: int) -> DomainError:
    return DomainError(
        f"the request body is larger than the limit of {limit} bytes", 413, "Content Too Large"
    )


async def receive_body(
    receive: Receive, content_length: str | None, limit: int, seconds: float
) -> bytes:
    """The whole body from the ASGI `receive`, refused (413) past `limit` bytes, or (408)
    when it has not all arrived within `seconds`."""
    if (
        content_length is not None
        and ascii_digits(content_length)
        and (len(content_length) > 18 or int(content_length) > limit)
    ):
        raise _too_large(limit)  # the server never reads past Content-Length
    task, deadlines = body_deadlines.start(seconds)
    try:
        return await _receive(receive, limit)
    except asyncio.CancelledError:
        if not deadlines.passed(task):
            raise  # cancelled for another reason: the server stopping, the client gone
        raise body_deadlines.BodyTimeout(seconds) from None
    finally:
        deadlines.end(task)


async def _receive(receive: Receive, limit: int) -> bytes:
    # Chunked bodies are counted as they stream in, and stop at the limit.
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            raise DomainError("the client disconnected before sending the whole body", 400)
        chunk = message.get("body", b"")
        if not chunks and not message.get("more_body", False):
            if len(chunk) > limit:
                raise _too_large(limit)
            return chunk  # the common case: one message
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def parse_json(raw: bytes, *, optional: bool = False, whole: bool = True) -> Any:
    """`raw` parsed; `whole`: refused (400) when it holds an integer past 64 bits, else the
    caller checks its integers (a batch's items, one by one: core/json_numbers.py)."""
    if not raw.strip():
        if optional:
            return None
        raise DomainError("a JSON request body is required", 400)
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        not_utf8 = _not_utf8(raw)  # only here: a valid body is never decoded twice
        if not_utf8 is not None:
            raise not_utf8 from None
        # An integer too long for a double: refused below, naming it (a batch: its item).
        value = read_with_long_integers_as_text(raw)
        if value is None:
            raise DomainError(f"the request body is not valid JSON: {exc}", 400) from None
    if whole:
        check_integers(raw)
    return value


def _not_utf8(raw: bytes) -> DomainError | None:
    """The problem of a body that is not UTF-8, the only encoding JSON has (RFC 8259 §8.1),
    whatever charset its Content-Type names; None for one that is. orjson's own words ("str
    is not valid UTF-8: surrogates not allowed") name no field and no remedy."""
    if 0 in raw[:2]:
        # JSON text starts with ASCII (a bracket, white space): in UTF-16 or UTF-32 without a
        # byte order mark one of its first two bytes is then a NUL.
        where = f"byte {raw.index(0)} is a NUL, as in UTF-16 or UTF-32 text"
    else:
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            where = f"byte {exc.start} is not UTF-8 (no other charset is read)"
        else:
            return None
    return invalid("body", f"must be JSON encoded in UTF-8 (RFC 8259); {where}")


async def read_body(request: Request) -> bytes:
    settings = context(request).settings
    return await receive_body(
        request.receive,
        request.headers.get("content-length"),
        settings.max_body_bytes,
        settings.body_timeout_seconds,
    )


async def read_json(request: Request, *, optional: bool = False) -> Any:
    return parse_json(await read_body(request), optional=optional)
