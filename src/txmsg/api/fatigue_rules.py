"""/api/v1/fatigue-rules: at most N profile-based messages per period (admin), and reports."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from txmsg.api.auth import authorize
from txmsg.api.bodies import read_json
from txmsg.api.context import context
from txmsg.api.responses import JSONResponse
from txmsg.api.routing import resource
from txmsg.core.fatigue import parse_rule, patch_rule
from txmsg.store import fatigue as store


async def create(request: Request) -> Response:
    await authorize(request)
    rule = parse_rule(await read_json(request))
    created = await context(request).db.write(store.create, rule)
    return JSONResponse(created.view(), status_code=201)


async def list_all(request: Request) -> Response:
    await authorize(request, "marketer")
    rules = await context(request).db.read(store.list_rules)
    return JSONResponse({"items": [r.view() for r in rules]})


async def get_one(request: Request) -> Response:
    await authorize(request, "marketer")
    rule = await context(request).db.read(store.require, request.path_params["name"])
    return JSONResponse(rule.view())


async def update(request: Request) -> Response:
    await authorize(request)
    db = context(request).db
    body = await read_json(request)
    current = await db.read(store.require, request.path_params["name"])
    updated = await db.write(store.replace, patch_rule(current, body))
    return JSONResponse(updated.view())


async def delete(request: Request) -> Response:
    await authorize(request)
    await context(request).db.write(store.delete, request.path_params["name"])
    return Response(status_code=204)


async def report(request: Request) -> Response:
    await authorize(request, "marketer")
    name = request.path_params["name"]
    days = await context(request).db.read(store.report, name)
    return JSONResponse({"name": name, "days": days})


routes = [
    resource("/api/v1/fatigue-rules", POST=create, GET=list_all),
    resource("/api/v1/fatigue-rules/{name}", GET=get_one, PATCH=update, DELETE=delete),
    resource("/api/v1/fatigue-rules/{name}/report", GET=report),
]
