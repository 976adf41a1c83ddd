"""/api/v1/messages: the transactional message of an event (marketer): draft, preview, publish."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from txmsg.api.auth import authorize
from txmsg.api.bodies import read_json
from txmsg.api.context import context, renderer
from txmsg.api.responses import JSONResponse
from txmsg.api.routing import resource
from txmsg.core.errors import invalid, invalid_many
from txmsg.core.event_config import sample_ctx
from txmsg.core.kinds import Channel, TargetType
from txmsg.core.queue import new_pkey
from txmsg.core.sms import analyse, sms_text
from txmsg.core.templates import (
    MessageSource,
    TemplateProblem,
    TemplateProblems,
    event_variables,
    parts_of,
    template_variables,
    variant_for,
)
from txmsg.core.timeutil import utcnow
from txmsg.core.trigger import CtxValidator
from txmsg.core.validation import check_storable, get_str, reject_unknown, require_object
from txmsg.core.variants import (
    SAMPLE_PROFILE,
    SAMPLE_UNSUBSCRIBE_URL,
    all_parts,
    parse_parts,
    parse_variants,
)
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
    reject_unknown(body, {*parts_of(config.channel), "sample_ctx", "variants"})
    draft: dict[str, Any] = dict(parse_parts(body, config.channel))
    variants = parse_variants(body.get("variants"), config.channel)
    if variants:
        draft["variants"] = variants
    sample = body.get("sample_ctx")
    if sample is not None and not isinstance(sample, dict):
        raise invalid("sample_ctx", "must be a JSON object")
    check_storable(sample, "sample_ctx")
    for prefix, parts in all_parts(draft, config.channel):
        try:  # syntax errors are reported now, with their line
            await renderer(request).check(MessageSource(parts))
        except TemplateProblems as exc:
            raise _prefixed(exc, prefix).as_domain_error("saved") from None
    db = context(request).db
    await db.write(store.save_draft, event_id, draft, sample)
    return await get_message(request)


def _prefixed(exc: TemplateProblems, prefix: str) -> TemplateProblems:
    """Problems of a language variant name its parts `variants.<language>.<part>`."""
    if not prefix:
        return exc
    return TemplateProblems(
        [TemplateProblem(prefix + p.part, p.line, p.reason) for p in exc.problems]
    )


async def _render_draft(
    request: Request, action: str
) -> tuple[str, str, dict[str, Any], dict[str, str]]:
    """Render the draft with the request's `ctx`, else the draft's sample, else generated.

    Every language variant must render too; the answer is the default's, or the variant's of
    the requested `language`. Profile-based messages render with a sample profile.
    """
    event_id = request.path_params["eventId"]
    db = context(request).db
    config = await db.read(event_configs.require, event_id)
    row, _, _ = await db.read(store.get, event_id)
    body = await read_json(request, optional=True)
    body = require_object(body) if body is not None else {}
    reject_unknown(body, {"ctx", "language"})
    language = get_str(body, "language", max_length=35)
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
    sms = config.channel == Channel.SMS
    event = event_variables(
        new_pkey(),
        event_id,
        None if sms else SAMPLE_PROFILE["email"],
        utcnow(),
        None,
        None,
        SAMPLE_PROFILE["mobilePhone"] if sms else None,
    )
    profile_based = config.target == TargetType.PROFILE
    variables = template_variables(
        ctx,
        event,
        {**SAMPLE_PROFILE, "language": language} if profile_based else None,
        SAMPLE_UNSUBSCRIBE_URL if profile_based else None,
    )
    rendered: dict[str, str] = {}
    wanted = variant_for(row.draft, language.lower() if language else None)
    for prefix, parts in all_parts(row.draft, config.channel):
        try:
            out = await renderer(request).render(MessageSource(parts), variables)
        except TemplateProblems as exc:
            raise _prefixed(exc, prefix).as_domain_error(action) from None
        if prefix == (f"variants.{wanted}." if wanted else ""):
            rendered = out
    return event_id, config.channel, row.draft, rendered


async def preview(request: Request) -> Response:
    await authorize(request, "marketer")
    _, channel, _, rendered = await _render_draft(request, "rendered")
    if channel == Channel.SMS:
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
