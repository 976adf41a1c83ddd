"""/api/v1/profiles: profiles (admin), one by one, imported in bulk from NDJSON or CSV, or
listed: found by email or phone, or paged through (keyset pages of `profile_id`,
core/profile_cursor.py, each one index range)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from txmsg.api.auth import authorize
from txmsg.api.bodies import read_json
from txmsg.api.context import context
from txmsg.api.query import int_param, query, takes
from txmsg.api.responses import JSONResponse
from txmsg.api.routing import resource
from txmsg.core import profile_cursor
from txmsg.core.addresses import normalize_email
from txmsg.core.errors import DomainError, FieldError, invalid
from txmsg.core.phones import normalize_known_phone
from txmsg.core.profile_import import (
    CSVRows,
    DuplicateEmails,
    NDJSONRows,
    Rejection,
    RowParser,
)
from txmsg.core.profiles import Profile, parse_profile, parse_profile_id, public_view
from txmsg.core.timeutil import parse_iso8601
from txmsg.store import profiles as store

IMPORT_BATCH = 1000
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
MAX_REPORTED_REJECTIONS = 20
_FORMATS: dict[str, Callable[[], RowParser]] = {
    "application/x-ndjson": NDJSONRows,
    "application/ndjson": NDJSONRows,
    "application/jsonl": NDJSONRows,
    "text/csv": CSVRows,
}


def _profile_id(request: Request) -> str:
    return parse_profile_id(request.path_params["profile_id"])


def _resubscribe(request: Request) -> bool:
    """`?resubscribe=true`: the caller vouches that the person asked to receive messages again,
    so an explicit `false` clears the opt-out they recorded themself (core.profiles'
    `written_opt_out`)."""
    raw = query(request).get("resubscribe")
    if raw is None or raw == "false":
        return False
    if raw == "true":
        return True
    raise invalid("resubscribe", "must be true or false", in_header=True)


_PLUS = " (a + in a query string reads as a space: write it %2B)"


def _param(name: str, raw: str, parse: Callable[[str, str], Any]) -> Any:
    """`parse(raw, name)`, its error naming the query parameter (no pointer into a body)."""
    try:
        return parse(raw, name)
    except DomainError as error:
        detail = error.errors[0].detail if error.errors else error.detail
        if " " in raw:  # `?email=ada+news@...`, `?mobile_phone=+33...` sent unencoded
            detail += _PLUS
        raise DomainError(
            f"{name}: {detail}", error.status, error.title, [FieldError(name, detail, True)]
        ) from None


def _listing(request: Request) -> dict[str, Any]:
    """The listing asked for: its filters (normalized as profiles store them), limit, and the
    profile id to go on after."""
    params = query(request)
    email = params.get("email")
    if email is not None:
        email = _param("email", email, normalize_email)
    phone = params.get("mobile_phone")
    if phone is not None:
        # A number of the spec's shape that no country uses is a 422, as a PUT's is.
        phone = _param("mobile_phone", phone, normalize_known_phone)
    raw_since = params.get("updated_since")
    since: datetime | None = None
    if raw_since is not None:
        since = _param("updated_since", raw_since, parse_iso8601)
    limit = int_param(params, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
    digest = profile_cursor.query_digest(email.lower() if email else None, phone, since)
    given = params.get("cursor")
    return {
        "email": email,
        "mobile_phone": phone,
        "updated_since": since,
        "limit": limit,
        "after": None if given is None else profile_cursor.decode(given, digest),
        "digest": digest,
    }


@takes("email", "mobile_phone", "updated_since", "limit", "cursor")
async def list_profiles(request: Request) -> Response:
    await authorize(request)
    asked = _listing(request)
    limit = asked["limit"]
    found = await context(request).db.read(
        store.page,
        limit + 1,  # one more: is there a next page?
        email=asked["email"],
        mobile_phone=asked["mobile_phone"],
        updated_since=asked["updated_since"],
        after=asked["after"],
    )
    page = found[:limit]
    next_cursor = None
    if len(found) > limit:
        next_cursor = profile_cursor.encode(page[-1].profile_id, asked["digest"])
    return JSONResponse({"items": [public_view(p) for p in page], "next_cursor": next_cursor})


@takes("resubscribe")
async def put_profile(request: Request) -> Response:
    await authorize(request)
    resubscribe = _resubscribe(request)
    profile = parse_profile(_profile_id(request), await read_json(request))
    db = context(request).db
    stored, created = await db.write(store.upsert, profile, resubscribe, db.clock.now())
    return JSONResponse(public_view(stored), status_code=201 if created else 200)


async def get_profile(request: Request) -> Response:
    await authorize(request)
    profile = await context(request).db.read(store.require, _profile_id(request))
    return JSONResponse(public_view(profile))


async def delete_profile(request: Request) -> Response:
    await authorize(request)
    await context(request).db.write(store.delete, _profile_id(request))
    return Response(status_code=204)


@takes("resubscribe")
async def import_profiles(request: Request) -> Response:
    """Rows are parsed as they stream in and written 1,000 per transaction."""
    await authorize(request)
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    parser_class = _FORMATS.get(media)
    if parser_class is None:
        raise DomainError(
            "Content-Type must be application/x-ndjson or text/csv", 415, "Unsupported Media Type"
        )
    resubscribe = _resubscribe(request)
    parser = parser_class()
    db = context(request).db
    created = updated = rejected = kept = 0
    rejections: list[Rejection] = []
    batch: list[tuple[int, Profile]] = []  # with its line
    duplicates = DuplicateEmails()
    since = db.clock.now()  # the database's time, as the profiles' `updated_at`

    async def flush() -> None:
        nonlocal created, updated, kept
        if batch:
            profiles = [p for _, p in batch]
            written, held = await db.write(
                store.import_batch, profiles, since, resubscribe, db.clock.now()
            )
            duplicates.check(batch, held)
            created += written.created
            updated += written.updated
            kept += written.opt_outs_kept
            batch.clear()

    def take(row: Profile | Rejection) -> None:
        nonlocal rejected
        if isinstance(row, Rejection):
            rejected += 1
            if len(rejections) < MAX_REPORTED_REJECTIONS:
                rejections.append(row)
        else:
            batch.append((parser.row_line, row))

    received = 0
    async for chunk in request.stream():
        received += len(chunk)
        for row in parser.feed(chunk):
            take(row)
        if len(batch) >= IMPORT_BATCH:
            await flush()
    if received == 0:  # e.g. curl's `--data-binary @file` with the file missing
        raise invalid("body", "is empty: send one profile per line (NDJSON), or CSV with a header")
    for row in parser.finish():
        take(row)
    await flush()
    return JSONResponse(
        {
            "created": created,
            "updated": updated,
            "rejected": rejected,
            "rejections": [r.as_dict() for r in rejections],
            "opt_outs_kept": kept,
            "warnings": duplicates.warnings(),
        }
    )


routes = [
    resource("/api/v1/profiles", GET=list_profiles),
    resource("/api/v1/profiles:import", POST=import_profiles),
    resource(
        "/api/v1/profiles/{profile_id}", PUT=put_profile, GET=get_profile, DELETE=delete_profile
    ),
]
