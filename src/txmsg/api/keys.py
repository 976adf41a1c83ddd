"""/api/v1/keys: API keys (admin)."""

from __future__ import annotations

from datetime import timedelta

from starlette.requests import Request
from starlette.responses import Response

from txmsg.api.auth import authorize
from txmsg.api.bodies import read_json
from txmsg.api.context import context
from txmsg.api.responses import JSONResponse
from txmsg.api.routing import resource
from txmsg.core.errors import invalid, not_found
from txmsg.core.rate_limit import parse_key_limit
from txmsg.core.roles import ROLES
from txmsg.core.validation import as_integer, get_choice, get_str, reject_unknown, require_object
from txmsg.store import keys as key_store

DEFAULT_GRACE_SECONDS = 86_400
MAX_GRACE_SECONDS = 30 * 86_400


async def create_key(request: Request) -> Response:
    await authorize(request)
    body = require_object(await read_json(request))
    reject_unknown(body, {"role", "label", "rate_limit"})
    role = get_choice(body, "role", ROLES, required=True)
    label = get_str(body, "label", required=True, max_length=200)
    limit = parse_key_limit(body.get("rate_limit"))
    assert role is not None and label is not None
    row, secret = await context(request).db.write(key_store.create_key, role, label, limit)
    return JSONResponse({**row, "key": secret}, status_code=201)


async def update_key(request: Request) -> Response:
    """Set or remove (`null`) a key's own rate limit."""
    await authorize(request)
    body = require_object(await read_json(request))
    reject_unknown(body, {"rate_limit"})
    if "rate_limit" not in body:
        raise invalid("rate_limit", "is required (null removes the key's own limit)")
    key_id = request.path_params["id"]
    ctx = context(request)
    row = await ctx.db.write(key_store.set_rate_limit, key_id, parse_key_limit(body["rate_limit"]))
    if row is None:
        raise not_found(f"no active API key '{key_id}'")
    ctx.keys.forget(key_id)
    return JSONResponse(row)


async def rotate_key(request: Request) -> Response:
    """A new secret for the key; the current one stays valid for `grace_seconds`."""
    await authorize(request)
    raw = await read_json(request, optional=True)
    body = require_object(raw if raw is not None else {})
    reject_unknown(body, {"grace_seconds"})
    grace = as_integer(body.get("grace_seconds", DEFAULT_GRACE_SECONDS))
    if grace is None or not 0 <= grace <= MAX_GRACE_SECONDS:
        raise invalid("grace_seconds", f"must be an integer from 0 to {MAX_GRACE_SECONDS}")
    key_id = request.path_params["id"]
    ctx = context(request)
    rotated = await ctx.db.write(
        key_store.rotate_key, key_id, timedelta(seconds=grace), ctx.db.clock.now()
    )
    if rotated is None:
        raise not_found(f"no active API key '{key_id}'")
    ctx.keys.forget(key_id)  # the old secret's cached principal gets its end of grace
    row, secret = rotated
    return JSONResponse({**row, "key": secret})


async def list_keys(request: Request) -> Response:
    await authorize(request)
    return JSONResponse({"items": await context(request).db.read(key_store.list_keys)})


async def revoke_key(request: Request) -> Response:
    await authorize(request)
    key_id = request.path_params["id"]
    ctx = context(request)
    if not await ctx.db.write(key_store.revoke_key, key_id):
        raise not_found(f"no active API key '{key_id}'")
    ctx.keys.forget(key_id)
    return Response(status_code=204)


routes = [
    resource("/api/v1/keys", POST=create_key, GET=list_keys),
    resource("/api/v1/keys/{id}", DELETE=revoke_key, PATCH=update_key),
    resource("/api/v1/keys/{id}/rotate", POST=rotate_key),
]
