"""/rest/mc/{eventId}: the trigger API, shaped like Adobe Campaign Standard's.

The hot path: a cached event lookup, a compiled ctx validator, and the group-commit funnel.
The 201 is written only after the event's transaction committed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import datetime
from functools import partial
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from txmsg.api.auth import authorize, authorize_header
from txmsg.api.bodies import parse_json, receive_body
from txmsg.api.context import AppContext, context
from txmsg.api.responses import JSONResponse, dumps
from txmsg.api.routing import ASGIEndpoint, resource
from txmsg.core.errors import invalid, not_found, unprocessable
from txmsg.core.kinds import Channel, Priority, TargetType
from txmsg.core.queue import NewEvent, expired_unsent, expired_waiting, new_pkey, priority_lane
from txmsg.core.rate_limit import held_now
from txmsg.core.statuses import LIVE_STATES, ConfigState, EventStatus
from txmsg.core.timeutil import isoformat
from txmsg.core.trigger import TriggerRequest, parse_trigger
from txmsg.store import events as event_store
from txmsg.store.event_configs import TriggerTarget
from txmsg.store.keys import Principal

MAX_IDEMPOTENCY_KEY = 255


def _unknown_event(event_id: str) -> Exception:
    detail = f"no published event '{event_id}' (unknown, draft or unpublished)"
    if not event_id.startswith("EVT"):
        # The commonest slip: the eventId given at creation, without the prefix publish adds.
        detail += f"; published eventIds start with EVT: did you mean 'EVT{event_id}'?"
    return not_found(detail[:400])


def answer(
    pkey: str,
    event_id: str,
    email: str | None,
    ctx: dict[str, Any],
    scheduled: datetime | None,
    expiration: datetime,
    event_date: datetime,
    status: str,
    reason: str | None = None,
    mobile_phone: str | None = None,
    priority: Priority = Priority.TRANSACTIONAL,
) -> dict[str, Any]:
    """The trigger API's view of an event (Adobe Campaign Standard's shape)."""
    out: dict[str, Any] = {
        "PKey": pkey,
        "type": event_id,
        "email": email,
        "mobilePhone": mobile_phone,
        "ctx": ctx,
        "scheduled": isoformat(scheduled),
        "expiration": isoformat(expiration),
        "eventDate": isoformat(event_date),
        "priority": priority.value,
        "href": f"/rest/mc/{event_id}/{pkey}",
        "status": status,
    }
    if reason and status != EventStatus.PROCESSED:
        out["reason"] = reason
    return out


def event_view(row: Any) -> dict[str, Any]:
    return answer(
        row.pkey,
        row.event_id,
        row.email,
        row.ctx,
        row.scheduled_at,
        row.expires_at,
        row.event_date,
        row.status,
        row.reason,
        row.mobile_phone,
        priority_lane(row.priority),
    )


def trigger_path(scope: Scope) -> str | None:
    """The eventId when `scope` is exactly `POST /rest/mc/{eventId}`, else None.

    Matches what the route below matches (one non-empty path segment); a request under a root
    path is left to the router.
    """
    if scope["method"] != "POST" or scope.get("root_path"):
        return None
    path: str = scope["path"]
    if not path.startswith("/rest/mc/"):
        return None
    event_id = path[9:]
    return event_id if event_id and "/" not in event_id else None


async def trigger(scope: Scope, receive: Receive, send: Send) -> None:
    """POST /rest/mc/{eventId}, the hot path: a raw ASGI endpoint.

    It reads what it needs straight from the ASGI scope (no Request or Response objects, about
    a quarter of a trigger's time in the event loop). Errors are raised as DomainErrors and
    answered by the app's exception handlers like every other route's.
    """
    await send_accepted(send, *await accept(scope, receive))


async def send_accepted(send: Send, payload: bytes, replayed: bool) -> None:
    """The 201 of an accepted (or replayed) trigger."""
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(payload)).encode()),
    ]
    if replayed:
        headers.append((b"idempotent-replayed", b"true"))
    await send({"type": "http.response.start", "status": 201, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


async def live_target(ctx: AppContext, event_id: str) -> TriggerTarget:
    """The cached trigger facts of a published or paused event; a 404 for any other."""
    if "\x00" in event_id:
        raise _unknown_event(event_id)
    target = await ctx.targets.get(event_id)
    if target is None or target.state not in LIVE_STATES:
        raise _unknown_event(event_id)
    return target


def idempotency_key(value: str | None) -> str | None:
    """The `Idempotency-Key` header's value, checked (None when it was not sent)."""
    if value is not None and not (0 < len(value) <= MAX_IDEMPOTENCY_KEY):
        raise invalid(
            "Idempotency-Key", f"must be 1 to {MAX_IDEMPOTENCY_KEY} characters", in_header=True
        )
    return value


def idempotency(principal: Principal, key: str, request: Any) -> tuple[str, str]:
    """The stored key (scoped to the API key that sent it: two callers never share answers)
    and the fingerprint of `request` (what a replay must repeat exactly)."""
    scoped = hashlib.sha256(f"{principal.key_id}\0{key}".encode()).hexdigest()
    canonical = orjson.dumps(request, option=orjson.OPT_SORT_KEYS)
    return scoped, hashlib.sha256(canonical).hexdigest()


def mismatch() -> Exception:
    return unprocessable(
        "this Idempotency-Key was already used with a different request body or event"
    )


def body_parser(
    ctx: AppContext, target: TriggerTarget, now: datetime
) -> Callable[[Any], TriggerRequest]:
    """The check of a trigger's body against its event configuration, made once a request (a
    batch checks each of its items with it)."""
    event_based = target.target == TargetType.EVENT
    # A profile-based event needs the trigger's own field it is reconciled by (cached with
    # the target: no query, nothing more to allocate).
    return partial(
        parse_trigger,
        validator=target.validator,
        now=now,
        default_expiration=ctx.settings.default_expiration,
        email_required=(
            target.channel == Channel.EMAIL if event_based else target.reconciled_by == "email"
        ),
        phone_required=(
            target.channel == Channel.SMS if event_based else target.reconciled_by == "mobilePhone"
        ),
    )


def status_of(target: TriggerTarget) -> EventStatus:
    """A new event waits `paused` while its event is paused or its message unpublished."""
    live = target.state == ConfigState.PUBLISHED and target.message_published
    return EventStatus.PENDING if live else EventStatus.PAUSED


def paused_reason(target: TriggerTarget) -> str | None:
    """Why a new event waits `paused` (told in the trigger's answer), None when it does not."""
    if target.state != ConfigState.PUBLISHED:
        return "the event configuration is paused: the event is sent when it is resumed"
    if not target.message_published:
        return "the event's message has no published version yet: it is sent once published"
    return None


def new_event(
    target: TriggerTarget,
    parsed: TriggerRequest,
    *,
    pkey: str,
    now: datetime,
    status: EventStatus,
    response: dict[str, Any],
    key: str | None = None,
    fingerprint: str | None = None,
) -> NewEvent:
    """The event a trigger queues, in its configuration's lane."""
    return NewEvent(
        pkey=pkey,
        event_id=target.event_id,
        priority=target.rank,
        status=status,
        email=parsed.email,
        ctx=parsed.ctx,
        event_date=now,
        scheduled_at=parsed.scheduled,
        expires_at=parsed.expiration,
        due_at=parsed.scheduled or now,
        response=response,
        idempotency_key=key,
        fingerprint=fingerprint,
        mobile_phone=parsed.mobile_phone,
        announce=target.webhook,
    )


async def accept(scope: Scope, receive: Receive) -> tuple[bytes, bool]:
    """Validate and commit a trigger: its answer's JSON, and whether it is a replay.

    Raises DomainErrors (problems); nothing is sent, so the caller still chooses the answer.
    """
    ctx: AppContext = scope["app"].state.txmsg
    headers: dict[bytes, bytes] = {}
    for name, value in scope["headers"]:
        headers.setdefault(name, value)  # the first of repeated headers, as Starlette reads
    auth = headers.get(b"authorization")
    client = scope.get("client")
    principal = await authorize_header(
        ctx, auth.decode("latin-1") if auth else None, ROLES, client=client[0] if client else None
    )
    event_id = scope["path_params"]["eventId"]
    target = await live_target(ctx, event_id)
    raw_key = headers.get(b"idempotency-key")
    idem_key = idempotency_key(raw_key.decode("latin-1") if raw_key is not None else None)
    length = headers.get(b"content-length")
    raw = await receive_body(
        receive,
        length.decode("latin-1") if length else None,
        ctx.settings.max_body_bytes,
        ctx.settings.body_timeout_seconds,
    )
    body = parse_json(raw)
    now = ctx.db.clock.now()  # the database's time: the event's due time is compared with it
    parsed = body_parser(ctx, target, now)(body)
    status = status_of(target)
    pkey = new_pkey()
    response = answer(
        pkey,
        event_id,
        parsed.email,
        parsed.ctx,
        parsed.scheduled,
        parsed.expiration,
        now,
        status.value,
        paused_reason(target),
        mobile_phone=parsed.mobile_phone,
        priority=target.priority,
    )
    scoped_key = fingerprint = None
    if idem_key is not None:
        scoped_key, fingerprint = idempotency(principal, idem_key, [event_id, body])
    event = new_event(
        target,
        parsed,
        pkey=pkey,
        now=now,
        status=status,
        response=response,
        key=scoped_key,
        fingerprint=fingerprint,
    )
    result = await ctx.enqueue(event)
    if result.kind == "mismatch":
        raise mismatch()
    return dumps(result.response), result.kind == "replay"


async def event_status(request: Request) -> Response:
    await authorize(request, *ROLES)
    event_id = request.path_params["eventId"]
    pkey = request.path_params["PKey"]
    ctx = context(request)
    now = ctx.db.clock.now()
    row, cap = await ctx.db.read(event_store.status_with_cap, event_id, pkey, now)
    if row is None:
        raise not_found(f"no event '{pkey}' for '{event_id}'")
    answer = event_view(row)
    if expired_unsent(row, now):
        answer["reason"] = expired_waiting(row.expires_at, row.reason)
    elif cap is not None:
        # Why a pending, due event waits, when its channel configuration's cap is spent for
        # the current window: from the counters the claims take tokens from (nothing is
        # written to the events a cap holds).
        held = held_now(*cap, now, bulk=priority_lane(row.priority) == Priority.BULK)
        if held is not None:
            answer["reason"] = held
    if row.provider is not None:
        answer["provider"] = row.provider  # which of its configuration's relays sent it
    return JSONResponse(answer)


ROLES = ("trigger",)  # who may trigger events (and read their status), beside admin

routes = [
    Route("/rest/mc/{eventId}", ASGIEndpoint(trigger), methods=["POST"]),
    resource("/rest/mc/{eventId}/{PKey}", GET=event_status),
]
