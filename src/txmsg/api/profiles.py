"""/api/v1/profiles: profiles (admin), one by one or imported in bulk from NDJSON or CSV."""

from __future__ import annotations

from collections.abc import Callable

from starlette.requests import Request
from starlette.responses import Response

from txmsg.api.auth import authorize
from txmsg.api.bodies import read_json
from txmsg.api.context import context
from txmsg.api.query import query
from txmsg.api.responses import JSONResponse
from txmsg.api.routing import resource
from txmsg.core.errors import DomainError, invalid
from txmsg.core.profile_import import (
    CSVRows,
    DuplicateEmails,
    NDJSONRows,
    Rejection,
    RowParser,
)
from txmsg.core.profiles import Profile, parse_profile, parse_profile_id, public_view
from txmsg.core.timeutil import utcnow
from txmsg.store import profiles as store

IMPORT_BATCH = 1000
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


async def put_profile(request: Request) -> Response:
    await authorize(request)
    resubscribe = _resubscribe(request)
    profile = parse_profile(_profile_id(request), await read_json(request))
    stored, created = await context(request).db.write(store.upsert, profile, resubscribe)
    return JSONResponse(public_view(stored), status_code=201 if created else 200)


async def get_profile(request: Request) -> Response:
    await authorize(request)
    profile = await context(request).db.read(store.require, _profile_id(request))
    return JSONResponse(public_view(profile))


async def delete_profile(request: Request) -> Response:
    await authorize(request)
    await context(request).db.write(store.delete, _profile_id(request))
    return Response(status_code=204)


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
    since = utcnow()

    async def flush() -> None:
        nonlocal created, updated, kept
        if batch:
            profiles = [p for _, p in batch]
            written, held = await db.write(store.import_batch, profiles, since, resubscribe)
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
    resource("/api/v1/profiles:import", POST=import_profiles),
    resource(
        "/api/v1/profiles/{profile_id}", PUT=put_profile, GET=get_profile, DELETE=delete_profile
    ),
]
