"""/api/v1/denylist and /api/v1/quarantine: addresses never sent to (admin)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from txmsg.api.auth import authorize
from txmsg.api.bodies import read_json
from txmsg.api.context import context
from txmsg.api.responses import JSONResponse
from txmsg.api.routing import resource
from txmsg.core.errors import DomainError, as_refused, invalid
from txmsg.core.kinds import CHANNELS
from txmsg.core.profiles import normalize_address
from txmsg.core.validation import get_choice, get_str, reject_unknown, require_object
from txmsg.store import typology as store


def _denied_view(row: Any) -> dict[str, Any]:
    return {
        "channel": row.channel,
        "address": row.address,
        "reason": row.reason,
        "created_at": row.created_at,
    }


def _quarantine_view(row: Any) -> dict[str, Any]:
    return {
        "channel": row.channel,
        "address": row.address,
        "reason": row.reason,
        "soft_bounces": row.soft_bounces,
        "quarantined_at": row.quarantined_at,
        "opted_out": row.opted_out,
    }


def channel_address(channel: str, value: object) -> str:
    """The address normalized for `channel`. A string that is no address of that channel is a
    422: the spec types the address by its channel only in words (and a path cannot say it)."""
    if not isinstance(value, str):
        return normalize_address(channel, value, "address")  # a 400: not a string
    try:
        return normalize_address(channel, value, "address")
    except DomainError as exc:
        raise as_refused(exc) from None


def path_address(request: Request) -> tuple[str, str]:
    channel = request.path_params["channel"]
    if channel not in CHANNELS:
        raise invalid("channel", "must be one of: " + ", ".join(CHANNELS))
    return channel, channel_address(channel, request.path_params["address"])


async def add_denied(request: Request) -> Response:
    await authorize(request)
    body = require_object(await read_json(request))
    reject_unknown(body, {"channel", "address", "reason"})
    channel = get_choice(body, "channel", CHANNELS, required=True)
    assert channel is not None
    address = channel_address(channel, body.get("address"))
    reason = get_str(body, "reason", max_length=500)
    row = await context(request).db.write(store.deny, channel, address, reason)
    return JSONResponse(_denied_view(row), status_code=201)


async def list_denied(request: Request) -> Response:
    await authorize(request)
    rows = await context(request).db.read(store.list_denied)
    return JSONResponse({"items": [_denied_view(r) for r in rows]})


async def remove_denied(request: Request) -> Response:
    await authorize(request)
    await context(request).db.write(store.undeny, *path_address(request))
    return Response(status_code=204)


async def list_quarantine(request: Request) -> Response:
    await authorize(request)
    rows = await context(request).db.read(store.list_quarantined)
    return JSONResponse({"items": [_quarantine_view(r) for r in rows]})


async def release(request: Request) -> Response:
    await authorize(request)
    await context(request).db.write(store.release, *path_address(request))
    return Response(status_code=204)


routes = [
    resource("/api/v1/denylist", POST=add_denied, GET=list_denied),
    resource("/api/v1/denylist/{channel}/{address}", DELETE=remove_denied),
    resource("/api/v1/quarantine", GET=list_quarantine),
    resource("/api/v1/quarantine/{channel}/{address}", DELETE=release),
]
