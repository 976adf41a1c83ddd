"""/api/v1/messages: the transactional message of an event (marketer): draft, preview, publish."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from txmsg.api import dry_run
from txmsg.api.auth import authorize
from txmsg.api.bodies import read_json
from txmsg.api.context import context, renderer
from txmsg.api.query import query, takes
from txmsg.api.responses import JSONResponse, problem_body
from txmsg.api.routing import resource
from txmsg.core.errors import DomainError, as_refused, invalid
from txmsg.core.event_config import sample_ctx
from txmsg.core.kinds import Channel, TargetType
from txmsg.core.queue import new_pkey
from txmsg.core.render_checks import render_warnings, sms_warnings
from txmsg.core.sms import analyse, sms_text
from txmsg.core.template_checks import TemplateWarning, check_parts, known_names
from txmsg.core.templates import (
    MessageSource,
    TemplateProblem,
    TemplateProblems,
    event_variables,
    part_error,
    part_pointers,
    parts_of,
    template_variables,
    variant_for,
)
from txmsg.core.timeutil import utcnow
from txmsg.core.trigger import CtxValidator
from txmsg.core.validation import check_storable, get_str, query_int, reject_unknown, require_object
from txmsg.core.variants import (
    MAX_PART,
    SAMPLE_PROFILE,
    SAMPLE_UNSUBSCRIBE_URL,
    all_parts,
    check_languages,
    parse_parts,
    parse_variants,
)
from txmsg.store import event_configs, targeting
from txmsg.store import events as event_store
from txmsg.store import messages as store


def _declared(config: Any) -> tuple[str, ...]:
    return tuple(f.name for f in event_configs.fields_of(config))


def _sample(row: Any, config: Any) -> dict[str, Any]:
    """What previews render with: the sample saved with the draft, or one made from the fields."""
    saved: dict[str, Any] | None = row.sample_ctx
    return saved if saved is not None else sample_ctx(event_configs.fields_of(config))


def draft_warnings(config: Any, draft: dict[str, Any]) -> list[TemplateWarning]:
    """What the draft reads that the event does not provide, and its syntax errors."""
    known = known_names(_declared(config), config.target == TargetType.PROFILE)
    parts = [
        (prefix + part, source)
        for prefix, sources in all_parts(draft, config.channel)
        for part, source in sources.items()
    ]
    return check_parts(parts, known)


async def get_message(request: Request) -> Response:
    await authorize(request, "marketer")
    event_id = request.path_params["eventId"]
    db = context(request).db
    config = await db.read(event_configs.require, event_id)
    return _answer(event_id, config, *await db.read(store.get, event_id))


def _answer(
    event_id: str, config: Any, row: Any, published: Any | None, versions: list[Any]
) -> Response:
    """The message, with its draft's ETag: what a save's If-Match names to change that draft
    and no later one."""
    return JSONResponse(
        {
            "eventId": event_id,
            "draft": row.draft,
            "sample_ctx": _sample(row, config),
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
            "warnings": [w.as_dict() for w in draft_warnings(config, row.draft)],
        },
        headers={"ETag": store.draft_tag(row)},
    )


async def get_version(request: Request) -> Response:
    await authorize(request, "marketer")
    event_id = request.path_params["eventId"]
    raw = request.path_params["version"]
    version = query_int(raw, "version", 1, 2**31 - 1)
    row = await context(request).db.read(store.get_version, event_id, version)
    return JSONResponse(
        {"eventId": event_id, "version": row.version, **row.content, "published_at": row.created_at}
    )


ALL_PARTS = ("subject", "html", "text", "body")


async def put_draft(request: Request) -> Response:
    await authorize(request, "marketer")
    event_id = request.path_params["eventId"]
    body = require_object(await read_json(request))
    config = await context(request).db.read(event_configs.require, event_id)
    try:
        saved = await _save_draft(request, event_id, body, config)
    except DomainError as exc:
        raise part_pointers(exc) from None
    return _answer(event_id, config, *saved)


async def _save_draft(
    request: Request, event_id: str, body: dict[str, Any], config: Any
) -> tuple[Any, Any | None, list[Any]]:
    """Check and save the draft `body` (an object: past this point, a field named `body` is
    the SMS text, not the request's body); answers the message as saved. With If-Match, only
    over the draft it names (else 412): without, a save replaces whatever is stored."""
    reject_unknown(body, {*ALL_PARTS, "sample_ctx", "variants"})
    for part in ALL_PARTS:  # the spec's types and lengths are 400s, whatever the channel
        get_str(body, part, allow_empty=True, max_length=MAX_PART)
    if body.get("variants") is not None:
        check_languages(body["variants"])
    try:  # which parts a draft needs is the event's channel's word: a 422, as the spec says
        reject_unknown(body, {*parts_of(config.channel), "sample_ctx", "variants"})
        draft: dict[str, Any] = dict(parse_parts(body, config.channel))
        variants = parse_variants(body.get("variants"), config.channel)
    except DomainError as exc:
        raise as_refused(exc) from None
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
    if_match = request.headers.get("if-match")
    return await context(request).db.write(store.save_draft, event_id, draft, sample, if_match)


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
        ctx = _sample(row, config)
    if not isinstance(ctx, dict):
        raise invalid("ctx", "must be a JSON object")
    check_storable(ctx, "ctx")
    CtxValidator(fields).check(ctx)
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
        _declared(config),
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
        # What the recipient's phone shows, and what it costs: length, encoding and segments;
        # and what a send would do with it (empty, or past Twilio's limit: not sent).
        text = sms_text(rendered["body"])
        info = analyse(text)
        return JSONResponse(
            {
                "text": text,
                "encoding": info.encoding,
                "segments": info.segments,
                "characters": info.characters,
                "units": info.units,
                "render_warnings": [w.as_dict() for w in sms_warnings(text)],
            }
        )
    warnings = render_warnings(Channel.EMAIL, rendered)
    return JSONResponse({**rendered, "render_warnings": [w.as_dict() for w in warnings]})


@takes("dry_run")
async def publish(request: Request) -> Response:
    principal = await authorize(request, "marketer")
    dry = query(request).get("dry_run", "false")
    if dry not in ("true", "false"):
        raise invalid("dry_run", "must be true or false", in_header=True)
    if dry == "true":
        return await _dry_run(request, payloads_shown=principal.role == "admin")
    refused = await _check_draft(request, "published")
    if refused is not None:
        return refused
    event_id, _, draft, _ = await _render_draft(request, "published")
    ctx = context(request)
    version = await ctx.db.write(store.publish, event_id, dict(draft), ctx.db.clock.now())
    ctx.targets.forget(event_id)
    ctx.config_changed()
    return JSONResponse({"eventId": event_id, "version": version, **draft}, status_code=201)


async def _check_draft(request: Request, action: str) -> Response | None:
    """The 422 answer when the draft reads names the event does not provide; else None."""
    db = context(request).db
    event_id = request.path_params["eventId"]
    config = await db.read(event_configs.require, event_id)
    row, _, _ = await db.read(store.get, event_id)
    warnings = draft_warnings(config, row.draft)
    return _refused(warnings, action) if warnings else None


def _refused(warnings: list[TemplateWarning], action: str) -> Response:
    """422: the draft reads names the event does not provide (or does not compile)."""
    first = warnings[0]
    more = f" (and {len(warnings) - 1} more)" if len(warnings) > 1 else ""
    body = problem_body(
        422,
        "Unprocessable Content",
        f"the template cannot be {action}: {first.part}: {first.detail}{more}",
        [part_error(w.part, w.detail).as_dict() for w in warnings],
    )
    body["warnings"] = [w.as_dict() for w in warnings]
    return JSONResponse(body, status_code=422, media_type="application/problem+json")


async def _dry_run(request: Request, *, payloads_shown: bool) -> Response:
    event_id = request.path_params["eventId"]
    db = context(request).db
    config = await db.read(event_configs.require, event_id)
    row, published, _ = await db.read(store.get, event_id)
    recent = await db.read(event_store.recent, event_id, dry_run.MAX_EVENTS)
    languages = None
    either_has_variants = row.draft.get("variants") or (
        published is not None and published.content.get("variants")
    )
    if either_has_variants and config.target == TargetType.PROFILE:
        # The variant each event gets is its profile's language's, found as a send finds it
        # (the published side's too: a draft whose languages were all removed is compared
        # with what each recipient gets today, not with the published default).
        languages = await db.read(targeting.languages, config.target, config.reconciliation, recent)
    try:
        answer = await dry_run.run(
            renderer(request),
            event_id,
            config.channel,
            config.target,
            _declared(config),
            row.draft,
            published.content if published is not None else None,
            recent,
            languages,
            payloads_shown=payloads_shown,
        )
    except TemplateProblems as exc:
        raise exc.as_domain_error("rendered") from None
    answer["published_version"] = published.version if published is not None else None
    answer["warnings"] = [w.as_dict() for w in draft_warnings(config, row.draft)]
    return JSONResponse(answer)


routes = [
    resource("/api/v1/messages/{eventId}", GET=get_message),
    resource("/api/v1/messages/{eventId}/versions/{version}", GET=get_version),
    resource("/api/v1/messages/{eventId}/draft", PUT=put_draft),
    resource("/api/v1/messages/{eventId}/preview", POST=preview),
    resource("/api/v1/messages/{eventId}/publish", POST=publish),
]
