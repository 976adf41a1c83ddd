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
from txmsg.core.json_numbers import check_integers, read_exact, read_with_long_integers_as_text
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


def parse_json(raw: bytes, *, optional: bool = False) -> Any:
    """`raw` parsed; refused (400) when it holds a value no field may hold (an integer past
    64 bits, a number past a double's range, a lone surrogate: core/json_numbers.py),
    naming its field."""
    if not raw.strip():
        if optional:
            return None
        raise DomainError("a JSON request body is required", 400)
    value, refused = _parse(raw)
    check_integers(raw, refused_by_the_fast_parser=refused)
    return value


def parse_json_items(raw: bytes) -> tuple[Any, Any | None]:
    """A batch's body: `raw` parsed, and its exact reading (json_numbers.read_exact) when it
    may hold a value no field may hold, for its items to be refused one by one for them."""
    if not raw.strip():
        raise DomainError("a JSON request body is required", 400)
    value, refused = _parse(raw)
    return value, read_exact(raw, refused_by_the_fast_parser=refused)


def _parse(raw: bytes) -> tuple[Any, bool]:
    """`raw` parsed, and whether the fast parser refused it (then the values it refuses of
    valid JSON are read as text: the exact reading names them)."""
    try:
        return orjson.loads(raw), False
    except orjson.JSONDecodeError as exc:
        not_utf8 = _not_utf8(raw)  # only here: a valid body is never decoded twice
        if not_utf8 is not None:
            raise not_utf8 from None
        value = read_with_long_integers_as_text(raw)
        if value is None:
            raise DomainError(f"the request body is not valid JSON: {exc}", 400) from None
        return value, True


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
