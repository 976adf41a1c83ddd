"""GET /api/v1/events/{eventId}: an event's latest triggers, newest first, for debugging an
integration (admin only: payloads are personal data). `status` filters, `since`/`until` bound
the trigger date, `limit` bounds a page and `cursor` (a page's `next_cursor`) goes on after it:
keyset pages of `(event_date, id)` (core/event_cursor.py), each one index range."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from txmsg.api.auth import authorize
from txmsg.api.context import context
from txmsg.api.query import int_param, query, takes
from txmsg.api.responses import JSONResponse
from txmsg.api.routing import resource
from txmsg.core import event_cursor
from txmsg.core.errors import DomainError, invalid, refused
from txmsg.core.kinds import Priority
from txmsg.core.queue import expired_unsent, expired_waiting, held_only_by_a_cap, priority_lane
from txmsg.core.rate_limit import held_now
from txmsg.core.statuses import EventStatus
from txmsg.core.timeutil import parse_iso8601
from txmsg.store import event_configs
from txmsg.store import events as store

MAX_LIMIT = 100
_STATUSES = tuple(s.value for s in EventStatus)


def _date(params: dict[str, str], name: str) -> datetime | None:
    raw = params.get(name)
    if raw is None:
        return None
    try:
        return parse_iso8601(raw, name)
    except DomainError as error:  # a query parameter: no pointer into a body
        raise invalid(name, error.errors[0].detail, in_header=True) from None


def _query(request: Request) -> dict[str, Any]:
    """The listing asked for: status, since, until, limit, and where to go on from."""
    params = query(request)
    status = params.get("status")
    if status is not None and status not in _STATUSES:
        raise invalid("status", "must be one of " + ", ".join(_STATUSES), in_header=True)
    limit = int_param(params, "limit", 20, 1, MAX_LIMIT)
    since, until = _date(params, "since"), _date(params, "until")
    if since is not None and until is not None and since > until:
        raise refused("since", "is after until", in_header=True)
    digest = event_cursor.query_digest(request.path_params["eventId"], status, since, until)
    given = params.get("cursor")
    after = None if given is None else event_cursor.decode(given, digest)
    return {
        "status": status,
        "since": since,
        "until": until,
        "limit": limit,
        "after": None if after is None else (after.event_date, after.id),
        "digest": digest,
    }


def _item(event_id: str, r: Any, now: datetime, held: dict[bool, str | None]) -> dict[str, Any]:
    """A listed event; `held`: by lane (bulk or not), why a spent cap holds a due one."""
    reason = r.reason
    if expired_unsent(r, now):
        reason = expired_waiting(r.expires_at, r.reason)
    elif held and held_only_by_a_cap(r, now):
        reason = held[priority_lane(r.priority) == Priority.BULK] or reason
    return {
        "PKey": r.pkey,
        "status": r.status,
        "reason": reason,
        "email": r.email,
        "mobilePhone": r.mobile_phone,
        "ctx": r.ctx,
        "priority": priority_lane(r.priority).value,
        "eventDate": r.event_date,
        "updated_at": r.updated_at,
        "message_version": r.message_version,
        "delivery_log": f"/api/v1/events/{event_id}/{r.pkey}/delivery-log",
    }


@takes("status", "limit", "since", "until", "cursor")
async def latest_events(request: Request) -> Response:
    await authorize(request)
    event_id = request.path_params["eventId"]
    asked = _query(request)
    limit = asked["limit"]
    db = context(request).db
    await db.read(event_configs.require, event_id)
    now = db.clock.now()
    rows, cap = await db.read(
        store.page_with_cap,
        event_id,
        limit + 1,  # one more: is there a next page?
        now,
        status=asked["status"],
        since=asked["since"],
        until=asked["until"],
        after=asked["after"],
    )
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = None
    if more:
        last = event_cursor.EventsCursor(rows[-1].event_date, rows[-1].id)
        next_cursor = event_cursor.encode(last, asked["digest"])
    # Why the pending, due events a spent channel cap holds wait (as their status says), by
    # lane: worked out once for the page, from the cap's counters read with it.
    held: dict[bool, str | None] = {}
    if cap is not None:
        held = {bulk: held_now(*cap, now, bulk=bulk) for bulk in (False, True)}
    items = [_item(event_id, r, now, held) for r in rows]
    return JSONResponse({"eventId": event_id, "items": items, "next_cursor": next_cursor})


routes = [resource("/api/v1/events/{eventId}", GET=latest_events)]
