"""GET /api/v1/events/{eventId}: an event's latest triggers, newest first, for debugging an
integration (admin only: payloads are personal data). `status` filters, `limit` bounds."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from txmsg.api.auth import authorize
from txmsg.api.context import context
from txmsg.api.query import int_param, query
from txmsg.api.responses import JSONResponse
from txmsg.api.routing import resource
from txmsg.core.errors import invalid
from txmsg.core.queue import priority_lane
from txmsg.core.statuses import EventStatus
from txmsg.store import event_configs
from txmsg.store import events as store

MAX_LIMIT = 100
_STATUSES = tuple(s.value for s in EventStatus)


async def latest_events(request: Request) -> Response:
    await authorize(request)
    event_id = request.path_params["eventId"]
    params = query(request)
    status = params.get("status")
    if status is not None and status not in _STATUSES:
        raise invalid("status", "must be one of " + ", ".join(_STATUSES), in_header=True)
    limit = int_param(params, "limit", 20, 1, MAX_LIMIT)
    db = context(request).db
    await db.read(event_configs.require, event_id)
    rows = await db.read(store.recent, event_id, limit, status)
    items = [
        {
            "PKey": r.pkey,
            "status": r.status,
            "reason": r.reason,
            "email": r.email,
            "mobilePhone": r.mobile_phone,
            "ctx": r.ctx,
            "priority": priority_lane(r.priority).value,
            "eventDate": r.event_date,
            "updated_at": r.updated_at,
            "message_version": r.message_version,
            "delivery_log": f"/api/v1/events/{event_id}/{r.pkey}/delivery-log",
        }
        for r in rows
    ]
    return JSONResponse({"eventId": event_id, "items": items})


routes = [resource("/api/v1/events/{eventId}", GET=latest_events)]
