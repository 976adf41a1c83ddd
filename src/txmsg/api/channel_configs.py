"""/api/v1/channel-configs: sender setups (admin). Passwords are write-only."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from txmsg.api.auth import authorize
from txmsg.api.bodies import read_json
from txmsg.api.context import context
from txmsg.api.responses import JSONResponse
from txmsg.api.routing import resource
from txmsg.core import channel_config as spec
from txmsg.core.dkim import SECRET_NAME as DKIM_SECRET
from txmsg.core.dkim import dns_records
from txmsg.core.errors import not_found
from txmsg.core.kinds import Channel
from txmsg.store import channel_configs as store


def view(row: Any) -> dict[str, Any]:
    out = spec.public_view(row.name, row.channel, row.settings, row.secrets, row.message_export)
    out["created_at"] = row.created_at
    out["updated_at"] = row.updated_at
    return out


async def create(request: Request) -> Response:
    await authorize(request)
    parsed = spec.parse_create(await read_json(request))
    ctx = context(request)
    row = await ctx.db.write(store.create, parsed)
    ctx.config_changed()  # a new signer of Twilio callbacks, perhaps for a cached account
    return JSONResponse(view(row), status_code=201)


async def list_all(request: Request) -> Response:
    await authorize(request)
    rows = await context(request).db.read(store.list_all)
    return JSONResponse({"items": [view(r) for r in rows]})


async def _require(request: Request) -> Any:
    return await context(request).db.read(store.require, request.path_params["name"])


async def get_one(request: Request) -> Response:
    await authorize(request)
    return JSONResponse(view(await _require(request)))


async def update(request: Request) -> Response:
    await authorize(request)
    body = await read_json(request)
    ctx = context(request)
    updated = await ctx.db.write(store.patch, request.path_params["name"], body)
    ctx.config_changed()
    return JSONResponse(view(updated))


async def delete(request: Request) -> Response:
    """Delete a configuration no event configuration uses (409 naming them otherwise)."""
    await authorize(request)
    ctx = context(request)
    await ctx.db.write(store.delete, request.path_params["name"])
    ctx.config_changed()  # its cached routes, providers and callback signers
    return Response(status_code=204)


async def dns(request: Request) -> Response:
    """The DNS records an email configuration needs: its DKIM key, SPF and DMARC advice."""
    await authorize(request)
    row = await _require(request)
    if row.channel != Channel.EMAIL:
        raise not_found(f"channel configuration '{row.name}' is not an email one: no DNS records")
    settings = row.settings
    records = dns_records(
        settings["from_email"],
        settings.get("bounce_domain"),
        settings.get("dkim"),
        row.secrets.get(DKIM_SECRET),
    )
    return JSONResponse({"name": row.name, **records})


routes = [
    resource("/api/v1/channel-configs", POST=create, GET=list_all),
    resource("/api/v1/channel-configs/{name}", GET=get_one, PATCH=update, DELETE=delete),
    resource("/api/v1/channel-configs/{name}/dns", GET=dns),
]
