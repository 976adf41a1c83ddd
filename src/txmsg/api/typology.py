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
from txmsg.core.errors import invalid
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
    }


def path_address(request: Request) -> tuple[str, str]:
    channel = request.path_params["channel"]
    if channel not in CHANNELS:
        raise invalid("channel", "must be one of: " + ", ".join(CHANNELS))
    return channel, normalize_address(channel, request.path_params["address"], "address")


async def add_denied(request: Request) -> Response:
    await authorize(request)
    body = require_object(await read_json(request))
    reject_unknown(body, {"channel", "address", "reason"})
    channel = get_choice(body, "channel", CHANNELS, required=True)
    assert channel is not None
    address = normalize_address(channel, body.get("address"), "address")
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
