"""/api/v1/channel-configs: sender setups (admin). Passwords are write-only."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from txmsg.api.auth import authorize
from txmsg.api.bodies import read_json
from txmsg.api.context import AppContext, context
from txmsg.api.responses import JSONResponse
from txmsg.api.routing import resource
from txmsg.core import channel_config as spec
from txmsg.core.dkim import SECRET_NAME as DKIM_SECRET
from txmsg.core.dkim import dns_records
from txmsg.core.errors import not_found
from txmsg.core.kinds import Channel
from txmsg.core.rate_limit import WindowUse, usage_view
from txmsg.store import channel_configs as store


def view(row: Any, uses: dict[str, list[WindowUse]]) -> dict[str, Any]:
    out = spec.public_view(row.name, row.channel, row.settings, row.secrets, row.message_export)
    # What the cap has spent in its current windows: whether it binds, or the queue is stuck.
    use = uses.get(row.name)
    out["rate_limit_usage"] = usage_view(use) if use is not None else None
    out["created_at"] = row.created_at
    out["updated_at"] = row.updated_at
    return out


async def _with_use(ctx: AppContext, rows: list[Any]) -> dict[str, list[WindowUse]]:
    """The use of the rows' caps, read after their write (a changed cap shows against what
    its windows have already counted)."""
    if not any((r.settings or {}).get("rate_limit") for r in rows):
        return {}
    return await ctx.db.read(store.cap_uses, rows, ctx.db.clock.now())


async def create(request: Request) -> Response:
    await authorize(request)
    parsed = spec.parse_create(await read_json(request))
    ctx = context(request)
    row = await ctx.db.write(store.create, parsed)
    ctx.config_changed()  # a new signer of Twilio callbacks, perhaps for a cached account
    return JSONResponse(view(row, await _with_use(ctx, [row])), status_code=201)


async def list_all(request: Request) -> Response:
    await authorize(request)
    ctx = context(request)
    rows, uses = await ctx.db.read(store.list_with_use, ctx.db.clock.now())
    return JSONResponse({"items": [view(r, uses) for r in rows]})


async def _require(request: Request) -> Any:
    return await context(request).db.read(store.require, request.path_params["name"])


async def get_one(request: Request) -> Response:
    await authorize(request)
    ctx = context(request)
    row, uses = await ctx.db.read(
        store.require_with_use, request.path_params["name"], ctx.db.clock.now()
    )
    return JSONResponse(view(row, uses))


async def update(request: Request) -> Response:
    await authorize(request)
    body = await read_json(request)
    ctx = context(request)
    updated = await ctx.db.write(store.patch, request.path_params["name"], body)
    ctx.config_changed()
    return JSONResponse(view(updated, await _with_use(ctx, [updated])))


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
