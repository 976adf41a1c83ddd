"""Restoring expired interaction data: one event configuration, or every one with a tag."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from txmsg.api.auth import authorize
from txmsg.api.bodies import read_json
from txmsg.api.context import context
from txmsg.api.responses import JSONResponse
from txmsg.api.routing import resource
from txmsg.core.errors import invalid
from txmsg.core.event_options import parse_tag
from txmsg.core.validation import reject_unknown, require_object
from txmsg.store.archives import Restored
from txmsg.store.reports import events_tagged


def _view(restored: Restored) -> dict[str, object]:
    return {"eventId": restored.event_id, "files": restored.files, "rows": restored.rows}


async def restore_one(request: Request) -> Response:
    await authorize(request)
    restored = await context(request).restore_interactions(request.path_params["eventId"])
    return JSONResponse(_view(restored))


async def restore_tagged(request: Request) -> Response:
    await authorize(request)
    body = require_object(await read_json(request))
    reject_unknown(body, {"tag"})
    if body.get("tag") is None:
        raise invalid("tag", "is required: the tag whose event configurations are restored")
    tag = parse_tag(body["tag"])
    ctx = context(request)
    restored = [
        await ctx.restore_interactions(event_id)
        for event_id in await ctx.db.read(events_tagged, tag)
    ]
    return JSONResponse({"tag": tag, "items": [_view(r) for r in restored]})


routes = [
    resource("/api/v1/event-configs/{eventId}/restore-interactions", POST=restore_one),
    resource("/api/v1/event-configs:restore-interactions", POST=restore_tagged),
]
