"""/api/v1/suppressions: why addresses are not sent to (admin): paged listing with filters,
CSV export and import (into the denylist), and the reasons of one address."""

from __future__ import annotations

import base64
import binascii

import orjson
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from txmsg.api.auth import authorize
from txmsg.api.bodies import read_body
from txmsg.api.context import context
from txmsg.api.query import int_param, query, takes
from txmsg.api.responses import JSONResponse
from txmsg.api.routing import resource
from txmsg.api.typology import path_address
from txmsg.core.errors import DomainError, invalid, refused
from txmsg.core.suppression import parse_filters, parse_import, to_csv
from txmsg.store import suppressions as store

MAX_LIMIT = 1000
MAX_EXPORT = 100_000
MAX_REPORTED_REJECTIONS = 20


def _cursor(key: tuple[str, str, str, str]) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(key)).decode("ascii")


def _after(params: dict[str, str]) -> tuple[str, ...] | None:
    raw = params.get("after")
    if raw is None:
        return None
    try:
        key = orjson.loads(base64.urlsafe_b64decode(raw.encode("ascii")))
    except (ValueError, binascii.Error, UnicodeEncodeError):
        key = None
    # No NUL: PostgreSQL's text refuses one (a 500), and no entry's key holds one.
    if not (
        isinstance(key, list)
        and len(key) in (3, 4)
        and all(isinstance(k, str) and "\x00" not in k for k in key)
    ):
        # Any string is a cursor by the spec; only the server's own are understood.
        raise refused("after", "must be the next_after of a previous page", in_header=True)
    return tuple(key)


@takes("channel", "reason", "since", "limit", "after")
async def list_suppressions(request: Request) -> Response:
    await authorize(request)
    params = query(request)
    filters = parse_filters(params)
    limit = int_param(params, "limit", 100, 1, MAX_LIMIT)
    rows = await context(request).db.read(store.page, filters, _after(params), limit)
    last = rows[-1] if len(rows) == limit else None
    return JSONResponse(
        {
            "items": [r.as_dict() for r in rows],
            "next_after": _cursor(
                (last.channel, last.address, last.reason.value, last.detail or "")
            )
            if last
            else None,
        }
    )


@takes("channel", "reason", "since")
async def export_csv(request: Request) -> Response:
    await authorize(request)
    filters = parse_filters(query(request))
    rows = await context(request).db.read(store.export, filters, MAX_EXPORT)
    return StreamingResponse(
        (line.encode("utf-8") for line in to_csv(rows)),
        media_type="text/csv; charset=utf-8",
        headers={"content-disposition": 'attachment; filename="suppressions.csv"'},
    )


async def import_csv(request: Request) -> Response:
    """Rows naming channel and address (and optionally detail) go on the denylist."""
    await authorize(request)
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media != "text/csv":
        raise DomainError("Content-Type must be text/csv", 415, "Unsupported Media Type")
    raw = await read_body(request)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise invalid("body", "must be UTF-8 text") from None
    rows, rejected = parse_import(text)
    added = await context(request).db.write(store.import_denylist, rows)
    return JSONResponse(
        {
            "added": added,
            "unchanged": len(rows) - added,
            "rejected": len(rejected),
            "rejections": [r.as_dict() for r in rejected[:MAX_REPORTED_REJECTIONS]],
        }
    )


async def why(request: Request) -> Response:
    await authorize(request)
    channel, address = path_address(request)
    entries = await context(request).db.read(store.why, channel, address)
    return JSONResponse(
        {
            "channel": channel,
            "address": address,
            "suppressed": bool(entries),
            "reasons": [e.as_dict() for e in entries],
        }
    )


routes = [
    resource("/api/v1/suppressions", GET=list_suppressions),
    resource("/api/v1/suppressions.csv", GET=export_csv, POST=import_csv),
    resource("/api/v1/suppressions/{channel}/{address}", GET=why),
]
