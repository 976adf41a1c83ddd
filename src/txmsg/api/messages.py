"""/api/v1/messages: the transactional message of an event (marketer): draft, preview, publish."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from txmsg.api.auth import authorize
from txmsg.api.bodies import read_json
from txmsg.api.context import context
from txmsg.api.responses import JSONResponse
from txmsg.api.routing import resource
from txmsg.core.errors import invalid, invalid_many
from txmsg.core.event_config import sample_ctx
from txmsg.core.queue import new_pkey
from txmsg.core.sms import analyse, sms_text
from txmsg.core.templates import (
    CompiledMessage,
    TemplateProblems,
    event_variables,
    parts_of,
    template_variables,
)
from txmsg.core.timeutil import utcnow
from txmsg.core.trigger import CtxValidator
from txmsg.core.validation import check_storable, get_str, reject_unknown, require_object
from txmsg.store import event_configs
from txmsg.store import messages as store


async def get_message(request: Request) -> Response:
    await authorize(request, "marketer")
    event_id = request.path_params["eventId"]
    db = context(request).db
    row, published, versions = await db.read(store.get, event_id)
    return JSONResponse(
        {
            "eventId": event_id,
            "draft": row.draft,
            "sample_ctx": row.sample_ctx,
            "published": (
                {
                    "version": published.version,
                    **published.content,
                    "published_at": published.created_at,
                }
                if published is not None
                else None
            ),
            "versions": [{"version": v.version, "published_at": v.created_at} for v in versions],
            "updated_at": row.updated_at,
        }
    )


async def put_draft(request: Request) -> Response:
    await authorize(request, "marketer")
    event_id = request.path_params["eventId"]
    body = require_object(await read_json(request))
    config = await context(request).db.read(event_configs.require, event_id)
    parts = parts_of(config.channel)
    reject_unknown(body, {*parts, "sample_ctx"})
    draft: dict[str, str] = {}
    for part in parts:
        value = get_str(body, part, allow_empty=True, max_length=256 * 1024)
        draft[part] = value or ""
    if config.channel == "sms":
        if not draft["body"].strip():
            raise invalid("body", "is required")
    else:
        if not draft["subject"].strip():
            raise invalid("subject", "is required")
        if not draft["html"].strip() and not draft["text"].strip():
            raise invalid("html", "html or text (or both) must be given")
    sample = body.get("sample_ctx")
    if sample is not None and not isinstance(sample, dict):
        raise invalid("sample_ctx", "must be a JSON object")
    check_storable(sample, "sample_ctx")
    try:
        CompiledMessage(draft)  # syntax errors are reported now, with their line
    except TemplateProblems as exc:
        raise exc.as_domain_error("saved") from None
    db = context(request).db
    await db.write(store.save_draft, event_id, draft, sample)
    return await get_message(request)


async def _render_draft(
    request: Request, action: str
) -> tuple[str, str, dict[str, str], dict[str, str]]:
    """Render the draft with the request's `ctx`, else the draft's sample, else generated."""
    event_id = request.path_params["eventId"]
    db = context(request).db
    config = await db.read(event_configs.require, event_id)
    row, _, _ = await db.read(store.get, event_id)
    body = await read_json(request, optional=True)
    body = require_object(body) if body is not None else {}
    reject_unknown(body, {"ctx"})
    fields = event_configs.fields_of(config)
    ctx = body.get("ctx")
    if ctx is None:
        ctx = row.sample_ctx if row.sample_ctx is not None else sample_ctx(fields)
    if not isinstance(ctx, dict):
        raise invalid("ctx", "must be a JSON object")
    check_storable(ctx, "ctx")
    errors = CtxValidator(fields).errors(ctx)
    if errors:
        raise invalid_many(errors)
    sms = config.channel == "sms"
    event = event_variables(
        new_pkey(),
        event_id,
        None if sms else "recipient@example.com",
        utcnow(),
        None,
        None,
        "+14155552671" if sms else None,
    )
    try:
        rendered = CompiledMessage(row.draft).render(template_variables(ctx, event))
    except TemplateProblems as exc:
        raise exc.as_domain_error(action) from None
    return event_id, config.channel, row.draft, rendered


async def preview(request: Request) -> Response:
    await authorize(request, "marketer")
    _, channel, _, rendered = await _render_draft(request, "rendered")
    if channel == "sms":
        # What the recipient's phone shows, and what it costs: encoding and segments.
        text = sms_text(rendered["body"])
        info = analyse(text)
        return JSONResponse({"text": text, "encoding": info.encoding, "segments": info.segments})
    return JSONResponse(rendered)


async def publish(request: Request) -> Response:
    await authorize(request, "marketer")
    event_id, _, draft, _ = await _render_draft(request, "published")
    ctx = context(request)
    version = await ctx.db.write(store.publish, event_id, dict(draft))
    ctx.targets.forget(event_id)
    ctx.config_changed()
    return JSONResponse({"eventId": event_id, "version": version, **draft}, status_code=201)


routes = [
    resource("/api/v1/messages/{eventId}", GET=get_message),
    resource("/api/v1/messages/{eventId}/draft", PUT=put_draft),
    resource("/api/v1/messages/{eventId}/preview", POST=preview),
    resource("/api/v1/messages/{eventId}/publish", POST=publish),
]
