"""POST /rest/mc/{eventId}/batch: up to 1,000 triggers of one event in one request.

Each item is checked as a single trigger's body; the accepted ones are stored in one
transaction (one write-funnel submission), under the request's one Idempotency-Key. The answer
has one item per input, in order: its PKey and status, or its problem (naming `events[i]...`).
201 when every item was accepted, 207 Multi-Status when any was refused (then nothing of the
refused items is stored, and the accepted ones are).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from txmsg.api.auth import authorize, spend
from txmsg.api.bodies import parse_json_items, read_body
from txmsg.api.context import context
from txmsg.api.responses import JSONResponse, problem_of
from txmsg.api.routing import resource
from txmsg.api.trigger import (
    ROLES,
    body_parser,
    idempotency,
    idempotency_key,
    live_target,
    mismatch,
    new_event,
    paused_reason,
    status_of,
)
from txmsg.core.batch import batch_items, parse_item
from txmsg.core.errors import DomainError, refused
from txmsg.core.json_numbers import inexact_values
from txmsg.core.queue import NewBatch, NewEvent, new_pkey
from txmsg.core.trigger import TriggerRequest
from txmsg.store.event_configs import TriggerTarget

# Items checked and made events between two turns of the event loop. A batch's 1,000 items
# hold the loop about 15 ms in all: a single trigger arriving meanwhile waits for one run of
# them, and reaches the write funnel ahead of the batch, not after it.
ITEMS_PER_TURN = 100


async def trigger_batch(request: Request) -> Response:
    principal = await authorize(request, *ROLES, cost=0)  # the batch's items count, below
    ctx = context(request)
    event_id = request.path_params["eventId"]
    target = await live_target(ctx, event_id)
    idem_key = idempotency_key(request.headers.get("idempotency-key"))
    raw = await read_body(request)
    # An item's value that no field may hold (an integer past 64 bits...) refuses that item.
    body, exact = parse_json_items(raw)
    now = ctx.db.clock.now()  # the database's time, as a single trigger's
    entries = batch_items(body, exact=exact)
    items, events = await _accept(body_parser(ctx, target, now), target, entries, now)
    response = {
        "accepted": len(events),
        "refused": len(items) - len(events),
        "items": items,
    }
    if not events:  # nothing to store: every item refused
        return _answer(response, replayed=False)
    limit = ctx.keys.limit_of(principal)
    if limit is not None and len(events) > limit.burst:  # a 429 would be retried in vain
        raise refused(
            "events",
            f"holds {len(events)} events to store, more than this API key's burst of"
            f" {limit.burst}: send at most that many in one batch",
        )
    await spend(ctx, principal, len(events))
    key = fingerprint = None
    if idem_key is not None:
        request_seen = [event_id, "batch", body]
        # `body` holds some values inexactly (integers past 64 bits as floats or as text,
        # numbers past a double's range and lone surrogates as text): their exact reading
        # tells such bodies apart (none: the fingerprint of any other batch).
        inexact = inexact_values(exact) if exact is not None else []
        key, fingerprint = idempotency(
            principal, idem_key, [*request_seen, inexact] if inexact else request_seen
        )
    result = await ctx.enqueue_batch(NewBatch(tuple(events), response, key, fingerprint))
    if result.kind == "mismatch":
        raise mismatch()
    return _answer(result.response, replayed=result.kind == "replay")


async def _accept(
    parse: Callable[[Any], TriggerRequest],
    target: TriggerTarget,
    entries: list[tuple[Any, Any]],
    now: datetime,
) -> tuple[list[dict[str, Any]], list[NewEvent]]:
    """The answer's items, one per input in order, and the events of the accepted ones;
    `ITEMS_PER_TURN` at a time, the event loop free in between."""
    status = status_of(target)
    reason = paused_reason(target)
    items: list[dict[str, Any]] = []
    events: list[NewEvent] = []
    for index, (body, exact) in enumerate(entries):
        if index and index % ITEMS_PER_TURN == 0:
            await asyncio.sleep(0)
        item = parse_item(index, body, exact, parse)
        if isinstance(item, DomainError):
            items.append({"index": index, "problem": problem_of(item)})
            continue
        pkey = new_pkey()
        accepted = {
            "index": index,
            "PKey": pkey,
            "status": status.value,
            # The lane, as a single trigger's answer gives it: one shape for both answers.
            "priority": target.priority.value,
            "href": f"/rest/mc/{target.event_id}/{pkey}",
        }
        if reason is not None:
            accepted["reason"] = reason
        items.append(accepted)
        events.append(new_event(target, item, pkey=pkey, now=now, status=status, response=accepted))
    return items, events


def _answer(response: dict[str, Any], *, replayed: bool) -> Response:
    """201 when every item was accepted, else 207 (the items say which)."""
    headers = {"Idempotent-Replayed": "true"} if replayed else None
    status = 201 if response["refused"] == 0 else 207
    return JSONResponse(response, status_code=status, headers=headers)


routes = [resource("/rest/mc/{eventId}/batch", POST=trigger_batch)]
