"""/api/v1/message-export/records: read the message export dataset (admin only: it holds
personal data)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from txmsg.api.auth import authorize
from txmsg.api.context import context
from txmsg.api.responses import JSONResponse
from txmsg.api.routing import resource
from txmsg.core.errors import invalid
from txmsg.core.export_record import document
from txmsg.store import message_export as store

MAX_LIMIT = 1000


def _int_param(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    # Digits only (no sign, no space, no other numerals), and never more than the bound has:
    # converting thousands of digits is refused by Python itself.
    digits = raw.lstrip("0") or "0"
    if not raw.isascii() or not raw.isdigit() or len(digits) > len(str(high)):
        raise invalid(name, f"must be an integer from {low} to {high}", in_header=True)
    if not low <= int(digits) <= high:
        raise invalid(name, f"must be an integer from {low} to {high}", in_header=True)
    return int(digits)


async def list_records(request: Request) -> Response:
    await authorize(request)
    limit = _int_param(request, "limit", 100, 1, MAX_LIMIT)
    after = _int_param(request, "after", 0, 0, 2**63 - 1)
    rows = await context(request).db.read(store.list_records, after, limit)
    items = [{"id": r.id, **document(r._asdict())} for r in rows]
    return JSONResponse({"items": items, "next_after": rows[-1].id if rows else after})


routes = [resource("/api/v1/message-export/records", GET=list_records)]
