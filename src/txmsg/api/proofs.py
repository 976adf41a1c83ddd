"""/api/v1/test-profiles and /api/v1/messages/{eventId}/proof (marketer).

A test profile holds sample event data (`ctx`) and optionally a sample profile for an event;
a proof renders the draft (or the published version) with it and sends it to test addresses,
its subject marked `[Proof]`. Proofs are not events: fatigue rules and reports never see them.
An address on the suppression list (for any reason) is refused: a 422 naming it, nothing sent.
"""

from __future__ import annotations

import re
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from txmsg.api.auth import authorize
from txmsg.api.bodies import read_json
from txmsg.api.context import context, renderer
from txmsg.api.responses import JSONResponse
from txmsg.api.routing import resource
from txmsg.core.addresses import normalize_email
from txmsg.core.errors import DomainError, FieldError, conflict, invalid
from txmsg.core.event_config import normalize_event_id
from txmsg.core.kinds import Channel, TargetType
from txmsg.core.mime import Sender, build_email
from txmsg.core.profiles import parse_profile, parse_profile_id
from txmsg.core.queue import new_pkey
from txmsg.core.suppression import refused_suppressed
from txmsg.core.templates import (
    MessageSource,
    TemplateProblems,
    event_variables,
    message_parts,
    template_variables,
    variant_for,
)
from txmsg.core.timeutil import utcnow
from txmsg.core.trigger import CtxValidator
from txmsg.core.validation import (
    check_storable,
    get_choice,
    get_str,
    reject_unknown,
    require_object,
)
from txmsg.core.variants import SAMPLE_PROFILE, SAMPLE_UNSUBSCRIBE_URL
from txmsg.store import event_configs, messages, suppressions
from txmsg.store import test_profiles as store

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}\Z")
MAX_PROOF_ADDRESSES = 20
PROOF_SUBJECT = "[Proof] "


def _view(row: Any) -> dict[str, Any]:
    return {
        "name": row.name,
        "eventId": row.event_id,
        "ctx": row.ctx,
        "profile": row.profile,
        "updated_at": row.updated_at,
    }


def _name(request: Request) -> str:
    name = request.path_params["name"]
    if not _NAME.match(name):
        raise invalid("name", "must hold letters, digits, _ . - (a letter or digit first)")
    return name


async def put_test_profile(request: Request) -> Response:
    await authorize(request, "marketer")
    name = _name(request)
    body = require_object(await read_json(request))
    reject_unknown(body, {"eventId", "ctx", "profile"})
    event_id = normalize_event_id(body.get("eventId"))
    db = context(request).db
    config = await db.read(event_configs.require, event_id)
    ctx = require_object(body.get("ctx", {}), "ctx")
    check_storable(ctx, "ctx")
    profile = body.get("profile")
    if profile is not None:
        profile = require_object(profile, "profile")
        pid = parse_profile_id(profile.get("profile_id", "test-profile"), "profile.profile_id")
        try:
            profile = parse_profile(pid, profile).template_view()
        except DomainError as exc:
            first = exc.errors[0] if exc.errors else FieldError("body", exc.detail)
            raise invalid("profile." + first.field, first.detail) from None
    # Last: a 422 only for a body the spec allows (else its 400).
    CtxValidator(event_configs.fields_of(config)).check(ctx)
    row, created = await db.write(store.put, name, event_id, ctx, profile)
    return JSONResponse(_view(row), status_code=201 if created else 200)


async def list_test_profiles(request: Request) -> Response:
    await authorize(request, "marketer")
    rows = await context(request).db.read(store.list_all)
    return JSONResponse({"items": [_view(r) for r in rows]})


async def get_test_profile(request: Request) -> Response:
    await authorize(request, "marketer")
    return JSONResponse(_view(await context(request).db.read(store.require, _name(request))))


async def delete_test_profile(request: Request) -> Response:
    await authorize(request, "marketer")
    await context(request).db.write(store.delete, _name(request))
    return Response(status_code=204)


def _addresses(body: dict[str, Any]) -> list[str]:
    raw = body.get("addresses")
    if not isinstance(raw, list) or not 1 <= len(raw) <= MAX_PROOF_ADDRESSES:
        raise invalid("addresses", f"must be an array of 1 to {MAX_PROOF_ADDRESSES} addresses")
    return [normalize_email(a, f"addresses[{i}]") for i, a in enumerate(raw)]


async def send_proof(request: Request) -> Response:
    await authorize(request, "marketer")
    event_id = request.path_params["eventId"]
    body = require_object(await read_json(request))
    reject_unknown(body, {"test_profile", "addresses", "version"})
    name = get_str(body, "test_profile", required=True, max_length=64)
    assert name is not None
    addresses = _addresses(body)
    which = get_choice(body, "version", ("draft", "published"), default="draft")
    ctx = context(request)
    config = await ctx.db.read(event_configs.require, event_id)
    row, published, _ = await ctx.db.read(messages.get, event_id)
    tester = await ctx.db.read(store.require, name)
    if tester.event_id != event_id:
        raise invalid("test_profile", f"holds data for {tester.event_id}, not {event_id}")
    if which == "draft":
        content = row.draft
    elif published is None:
        raise conflict("the message has no published version yet")
    else:
        content = published.content
    # A proof is a real send: an address on the suppression list gets none (no override: an
    # admin removes the entry). Before the render, so a refused proof costs no worker.
    suppressed = await ctx.db.read(suppressions.why_each, Channel.EMAIL.value, addresses)
    if suppressed:
        raise refused_suppressed(
            {f"addresses[{i}]": suppressed[a] for i, a in enumerate(addresses) if a in suppressed}
        )
    profile_based = config.target == TargetType.PROFILE
    profile = (tester.profile or SAMPLE_PROFILE) if profile_based else None
    variant = variant_for(content, profile.get("language") if profile else None)
    pkey = new_pkey()
    event = event_variables(pkey, event_id, addresses[0], utcnow(), None, None)
    try:
        rendered = await renderer(request).render(
            MessageSource(message_parts(content, variant)),
            template_variables(
                tester.ctx,
                event,
                profile,
                SAMPLE_UNSUBSCRIBE_URL if profile_based else None,
                tuple(f.name for f in event_configs.fields_of(config)),
            ),
        )
    except TemplateProblems as exc:
        raise exc.as_domain_error("rendered") from None

    def build(sender: Sender, address: str) -> bytes:
        return build_email(
            sender,
            address,
            PROOF_SUBJECT + rendered.get("subject", ""),
            rendered.get("text"),
            rendered.get("html"),
            message_id=f"proof-{new_pkey()}",
            date=utcnow(),
            extra_headers=(("X-Txmsg-Proof", "true"),),
        )

    results = await ctx.send_proof(event_id, addresses, build)
    return JSONResponse(
        {"eventId": event_id, "version": which, "variant": variant, "results": results}
    )


routes = [
    resource("/api/v1/test-profiles", GET=list_test_profiles),
    resource(
        "/api/v1/test-profiles/{name}",
        PUT=put_test_profile,
        GET=get_test_profile,
        DELETE=delete_test_profile,
    ),
    resource("/api/v1/messages/{eventId}/proof", POST=send_proof),
]
