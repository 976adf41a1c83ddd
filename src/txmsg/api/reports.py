"""/api/v1/reports: day reports per event or per tag (JSON or CSV), recipients reports."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from txmsg.api.auth import authorize
from txmsg.api.context import context
from txmsg.api.query import query, takes
from txmsg.api.responses import JSONResponse, dumps
from txmsg.api.routing import resource
from txmsg.core.csv_cells import defused
from txmsg.core.errors import invalid, not_found
from txmsg.core.event_options import parse_tag
from txmsg.core.reports import day_range, event_report, report_csv_rows, tag_report
from txmsg.core.timeutil import isoformat, utcnow
from txmsg.store import archives, recipients
from txmsg.store import event_configs as event_store
from txmsg.store import reports as store

RECIPIENTS_CHUNK = 1000
EXPIRED_HEADER = "Txmsg-Interactions-Expired"


def _format(request: Request, *allowed: str) -> str:
    fmt = query(request).get("format", allowed[0])
    if fmt not in allowed:
        raise invalid("format", "must be one of " + ", ".join(allowed), in_header=True)
    return fmt


def _csv(rows: list[list[Any]]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerows([defused(c) for c in row] for row in rows)
    return out.getvalue()


def _csv_answer(text: str, filename: str, headers: dict[str, str] | None = None) -> Response:
    return Response(
        text,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"', **(headers or {})},
    )


@takes("from", "to", "format")
async def event_day_report(request: Request) -> Response:
    await authorize(request, "marketer")
    fmt = _format(request, "json", "csv")
    event_id = request.path_params["eventId"]
    params = query(request)
    rng = day_range(params.get("from"), params.get("to"), utcnow().date())
    db = context(request).db
    await db.read(event_store.require, event_id)
    rows = await db.read(store.day_counts, [event_id], rng.first, rng.last)
    report = event_report(event_id, rows, rng)
    if fmt == "csv":
        text = _csv(report_csv_rows(report, "versions", "message_version"))
        return _csv_answer(text, f"{event_id}-{rng.first}-{rng.last}.csv")
    return JSONResponse(report)


@takes("tag", "from", "to", "format")
async def tag_day_report(request: Request) -> Response:
    await authorize(request, "marketer")
    fmt = _format(request, "json", "csv")
    params = query(request)
    if "tag" not in params:
        raise invalid("tag", "is required: the tag whose events are reported", in_header=True)
    tag = parse_tag(params["tag"], in_query=True)
    rng = day_range(params.get("from"), params.get("to"), utcnow().date())
    db = context(request).db
    event_ids = await db.read(store.events_tagged, tag)
    if not event_ids:  # a typo would otherwise read as a month of zeros
        raise not_found(f"no event configuration is tagged '{tag}'")
    rows = await db.read(store.day_counts, event_ids, rng.first, rng.last)
    report = tag_report(tag, event_ids, rows, rng)
    if fmt == "csv":
        text = _csv(report_csv_rows(report, "events", "eventId"))
        return _csv_answer(text, f"tag-{tag}-{rng.first}-{rng.last}.csv")
    return JSONResponse(report)


def _cell(value: Any) -> Any:
    if isinstance(value, datetime):
        return isoformat(value)
    return "" if value is None else value


@takes("format")
async def recipients_report(request: Request) -> Response:
    """Streams: one chunk of messages in memory at a time, whatever the event's size."""
    await authorize(request)
    fmt = _format(request, "csv", "json")
    event_id = request.path_params["eventId"]
    db = context(request).db
    config = await db.read(event_store.require, event_id)
    expired = await db.read(archives.interactions_expired, event_id)

    async def chunks() -> AsyncIterator[list[dict[str, Any]]]:
        after = 0
        while True:
            rows = await db.read(
                recipients.chunk, event_id, config.channel, after, RECIPIENTS_CHUNK
            )
            if not rows:
                return
            after = rows[-1]["id"]
            yield rows

    async def as_csv() -> AsyncIterator[bytes]:
        yield _csv([list(recipients.COLUMNS)]).encode()
        async for rows in chunks():
            lines = [[_cell(r[c]) for c in recipients.COLUMNS] for r in rows]
            yield _csv(lines).encode()

    async def as_json() -> AsyncIterator[bytes]:
        head = {"eventId": event_id, "interactions_expired": expired}
        yield dumps(head)[:-1] + b',"items":['
        first = True
        async for rows in chunks():
            items = b",".join(dumps({c: r[c] for c in recipients.COLUMNS}) for r in rows)
            yield items if first else b"," + items
            first = False
        yield b"]}"

    headers = {EXPIRED_HEADER: "true" if expired else "false"}
    if fmt == "csv":
        headers["Content-Disposition"] = f'attachment; filename="{event_id}-recipients.csv"'
        return StreamingResponse(as_csv(), media_type="text/csv; charset=utf-8", headers=headers)
    return StreamingResponse(as_json(), media_type="application/json", headers=headers)


routes = [
    resource("/api/v1/reports", GET=tag_day_report),
    resource("/api/v1/reports/{eventId}", GET=event_day_report),
    resource("/api/v1/reports/{eventId}/recipients", GET=recipients_report),
]
