"""/api/v1/templates: the shipped templates an event configuration can start from."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from txmsg.api.auth import authorize
from txmsg.api.responses import JSONResponse
from txmsg.api.routing import resource
from txmsg.core.errors import not_found
from txmsg.store.template_library import library


async def list_templates(request: Request) -> Response:
    await authorize(request, "marketer")
    items = [
        {
            "name": t["name"],
            "channel": t["channel"],
            "label": t["label"],
            "description": t["description"],
            "fields": t["fields"],
        }
        for t in library().values()
    ]
    return JSONResponse({"items": items})


async def get_template(request: Request) -> Response:
    await authorize(request, "marketer")
    name = request.path_params["name"]
    shipped = library().get(name)
    if shipped is None:
        raise not_found(f"no shipped template '{name}'")
    return JSONResponse(shipped)


routes = [
    resource("/api/v1/templates", GET=list_templates),
    resource("/api/v1/templates/{name}", GET=get_template),
]
