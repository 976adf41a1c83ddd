"""/api/v1/event-configs: events, their payload fields and their lifecycle (admin)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from txmsg.api.auth import authorize
from txmsg.api.bodies import read_json
from txmsg.api.context import context
from txmsg.api.responses import JSONResponse
from txmsg.api.routing import resource
from txmsg.core.channel_config import parse_name
from txmsg.core.errors import DomainError, conflicting, invalid, refused
from txmsg.core.event_config import (
    CREATE_FIELDS,
    UPDATE_FIELDS,
    api_preview,
    normalize_event_id,
    parse_fields,
    parse_priority,
)
from txmsg.core.event_options import parse_tags, parse_webhook, webhook_view
from txmsg.core.kinds import CHANNELS, TARGET_TYPES, TargetType
from txmsg.core.reconciliation import parse_reconciliation
from txmsg.core.templates import parts_of
from txmsg.core.validation import get_choice, get_str, reject_unknown, require_object
from txmsg.store import event_configs as store
from txmsg.store import event_options as options_store
from txmsg.store.event_options import KEEP, Options
from txmsg.store.template_library import default_template, library


def view(row: Any, options: Options | None = None) -> dict[str, Any]:
    options = options or Options()
    return {
        "eventId": row.event_id,
        "label": row.label,
        "channel": row.channel,
        "channel_config": row.channel_config,
        "target": row.target,
        "reconciliation": row.reconciliation,
        "fields": row.fields,
        "template": row.template,
        "priority": row.priority,
        "tags": options.tags,
        "webhook": webhook_view(options.webhook_url),
        "state": row.state,
        "trigger_path": f"/rest/mc/{row.event_id}",
        "created_at": row.created_at,
        "updated_at": row.updated_at,
        "published_at": row.published_at,
    }


def _template(body: dict[str, Any], channel: str, *, stored_channel: bool = False) -> str:
    """The shipped template named in `body` (of the event's channel), else the default.

    A template of the other channel is a 400 when the body names the channel (the spec ties
    the two), a 422 when the channel is the stored event's (a PATCH)."""
    name = get_str(body, "template", max_length=64)
    if name is None:
        return default_template(channel)
    fitting = sorted(n for n, t in library().items() if t["channel"] == channel)
    if name not in fitting:
        detail = f"unknown {channel} template; available: " + ", ".join(fitting)
        if stored_channel and name in library():
            raise refused("template", detail)
        raise invalid("template", detail)
    return name


async def create(request: Request) -> Response:
    await authorize(request)
    body = require_object(await read_json(request))
    reject_unknown(body, CREATE_FIELDS)
    event_id = normalize_event_id(body.get("eventId"))
    channel = get_choice(body, "channel", CHANNELS, required=True)
    assert channel is not None
    target = get_choice(body, "target", TARGET_TYPES, default=TargetType.EVENT)
    values = {
        "event_id": event_id,
        "label": get_str(body, "label", default=event_id, max_length=200),
        "channel": channel,
        "channel_config": parse_name_field(body.get("channel_config")),
        "target": target,
        "reconciliation": parse_reconciliation(
            body.get("reconciliation"), target or TargetType.EVENT
        ),
        "fields": [f.as_dict() for f in parse_fields(body.get("fields"))],
        "template": _template(body, channel),
        "priority": parse_priority(body).value,
    }
    tags = parse_tags(body.get("tags"))
    webhook = parse_webhook(body.get("webhook"), has_secret=False, creating=True)
    row, options = await context(request).db.write(options_store.create, values, tags, webhook)
    return JSONResponse(view(row, options), status_code=201)


def parse_name_field(value: object) -> str:
    try:
        return parse_name(value)
    except DomainError:
        raise invalid(
            "channel_config", "is required: the name of a channel configuration"
        ) from None


async def list_all(request: Request) -> Response:
    await authorize(request, "marketer")
    rows, options = await context(request).db.read(options_store.with_options, None)
    return JSONResponse({"items": [view(r, options[r.event_id]) for r in rows]})


async def get_one(request: Request) -> Response:
    await authorize(request, "marketer")
    [row], options = await context(request).db.read(
        options_store.with_options, request.path_params["eventId"]
    )
    return JSONResponse(view(row, options[row.event_id]))


def _check_fixed(body: dict[str, Any], current: Any) -> None:
    """eventId, channel and target may be sent, equal to the stored ones: another valid value
    is a 409 (it conflicts with the stored event), a malformed one a 400."""
    if "eventId" in body and normalize_event_id(body["eventId"]) != current.event_id:
        raise conflicting("eventId", "cannot be changed after creation")
    for fixed, stored, choices in (
        ("channel", current.channel, CHANNELS),
        ("target", current.target, TARGET_TYPES),
    ):
        if fixed in body and body[fixed] != stored:
            get_choice(body, fixed, choices, nullable=False)  # a malformed one (null too): 400
            raise conflicting(fixed, "cannot be changed after creation")


async def update(request: Request) -> Response:
    await authorize(request)
    event_id = request.path_params["eventId"]
    body = require_object(await read_json(request))
    reject_unknown(body, UPDATE_FIELDS)
    current = await context(request).db.read(store.require, event_id)
    _check_fixed(body, current)
    values: dict[str, Any] = {}
    if "label" in body:
        values["label"] = get_str(body, "label", required=True, max_length=200)
    if "channel_config" in body:
        values["channel_config"] = parse_name_field(body["channel_config"])
    if "fields" in body:
        values["fields"] = [f.as_dict() for f in parse_fields(body["fields"])]
    if "template" in body:
        values["template"] = _template(body, current.channel, stored_channel=True)
    if "reconciliation" in body:
        if body["reconciliation"] is not None and current.target != TargetType.PROFILE:
            raise refused("reconciliation", "only profile-based events (target: profile) have one")
        values["reconciliation"] = parse_reconciliation(body["reconciliation"], current.target)
    if "priority" in body:  # also while live: events triggered from now on take the new lane
        values["priority"] = parse_priority(body, required=True).value
    ctx = context(request)
    tags = parse_tags(body["tags"]) if "tags" in body else KEEP
    webhook: Any = KEEP
    if "webhook" in body:
        has_secret = await ctx.db.read(options_store.has_webhook_secret, event_id)
        webhook = parse_webhook(body["webhook"], has_secret=has_secret, creating=False)
    row, options = await ctx.db.write(options_store.update, event_id, values, tags, webhook)
    ctx.targets.forget(event_id)
    ctx.config_changed()
    return JSONResponse(view(row, options))


async def delete(request: Request) -> Response:
    await authorize(request)
    event_id = request.path_params["eventId"]
    ctx = context(request)
    await ctx.db.write(store.delete, event_id)
    ctx.targets.forget(event_id)
    return Response(status_code=204)


def _draft_from(template_name: str, channel: str) -> dict[str, Any]:
    shipped = library()[template_name]
    if shipped["channel"] != channel:  # stored before templates had channels: use the default
        shipped = library()[default_template(channel)]
    return {
        **{part: shipped[part] for part in parts_of(channel)},
        "sample_ctx": shipped["sample_ctx"],
    }


def lifecycle(action: str) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        await authorize(request)
        event_id = request.path_params["eventId"]
        ctx = context(request)
        current = await ctx.db.read(store.require, event_id)
        draft = _draft_from(current.template, current.channel)
        row = await ctx.db.write(store.change_state, event_id, action, draft, ctx.db.clock.now())
        ctx.targets.forget(event_id)
        ctx.config_changed()
        options = await ctx.db.read(options_store.options_of, [event_id])
        out = view(row, options[event_id])
        if action in ("publish", "resume"):
            base = ctx.settings.public_url or str(request.base_url)
            out["api_preview"] = api_preview(
                base,
                event_id,
                store.fields_of(row),
                row.channel,
                row.target,
                row.reconciliation,
            )
        return JSONResponse(out)

    endpoint.__name__ = f"{action}_event_config"
    return endpoint


routes = [
    resource("/api/v1/event-configs", POST=create, GET=list_all),
    resource("/api/v1/event-configs/{eventId}", GET=get_one, PATCH=update, DELETE=delete),
    *(
        resource(f"/api/v1/event-configs/{{eventId}}/{action}", POST=lifecycle(action))
        for action in ("publish", "pause", "resume", "unpublish")
    ),
]
