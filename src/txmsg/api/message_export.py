"""/api/v1/message-export/records: read the message export dataset (admin only: it holds
personal data)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from txmsg.api.auth import authorize
from txmsg.api.context import context
from txmsg.api.query import int_param, query, takes
from txmsg.api.responses import JSONResponse
from txmsg.api.routing import resource
from txmsg.core.export_record import document
from txmsg.store import message_export as store

MAX_LIMIT = 1000


@takes("limit", "after")
async def list_records(request: Request) -> Response:
    await authorize(request)
    params = query(request)
    limit = int_param(params, "limit", 100, 1, MAX_LIMIT)
    after = int_param(params, "after", 0, 0, 2**63 - 1)
    rows = await context(request).db.read(store.list_records, after, limit)
    items = [{"id": r.id, **document(r._asdict())} for r in rows]
    return JSONResponse({"items": items, "next_after": rows[-1].id if rows else after})


routes = [resource("/api/v1/message-export/records", GET=list_records)]
