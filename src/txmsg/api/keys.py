"""/api/v1/keys: API keys (admin)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from txmsg.api.auth import authorize
from txmsg.api.bodies import read_json
from txmsg.api.context import context
from txmsg.api.responses import JSONResponse
from txmsg.api.routing import resource
from txmsg.core.errors import not_found
from txmsg.core.validation import get_choice, get_str, reject_unknown, require_object
from txmsg.store import keys as key_store


async def create_key(request: Request) -> Response:
    await authorize(request)
    body = require_object(await read_json(request))
    reject_unknown(body, {"role", "label"})
    role = get_choice(body, "role", key_store.ROLES, required=True)
    label = get_str(body, "label", required=True, max_length=200)
    assert role is not None and label is not None
    row, secret = await context(request).db.write(key_store.create_key, role, label)
    return JSONResponse({**row, "key": secret}, status_code=201)


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
    resource("/api/v1/keys/{id}", DELETE=revoke_key),
]
