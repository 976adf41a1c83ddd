"""The marketers' console at /console: static pages (committed, no build step) over /api/v1.

The pages call the same API operations as any client; this module only serves the files and
opens and closes sessions (api/sessions.py). Nothing is loaded from another host: the
Content-Security-Policy allows this origin only.
"""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import Response

from txmsg.api.auth import authorize, principal_of
from txmsg.api.bodies import read_json
from txmsg.api.context import context
from txmsg.api.responses import JSONResponse
from txmsg.api.routing import resource
from txmsg.api.sessions import (
    CSRF_COOKIE,
    SESSION_COOKIE,
    SESSION_SECONDS,
    check_csrf,
    end_session,
    new_csrf_token,
    new_session,
)
from txmsg.core.errors import DomainError, not_found
from txmsg.core.validation import get_str, reject_unknown, require_object

ASSETS = Path(__file__).resolve().parent / "console_assets"
_TYPES = {
    "console.js": "text/javascript; charset=utf-8",
    "console.css": "text/css; charset=utf-8",
}
CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
    "frame-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; "
    "base-uri 'none'; object-src 'none'"
)
_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def _secure(request: Request) -> bool:
    return request.url.scheme == "https"


async def page(request: Request) -> Response:
    """The console's single page; sets the CSRF cookie its forms send back as a header."""
    response = Response((ASSETS / "index.html").read_bytes(), media_type="text/html; charset=utf-8")
    response.headers.update(_HEADERS)
    if not request.cookies.get(CSRF_COOKIE):
        response.set_cookie(
            CSRF_COOKIE, new_csrf_token(), path="/", samesite="strict", secure=_secure(request)
        )
    return response


async def asset(request: Request) -> Response:
    name = request.path_params["name"]
    media_type = _TYPES.get(name)
    if media_type is None:
        raise not_found(f"no console asset '{name}'")
    response = Response((ASSETS / name).read_bytes(), media_type=media_type)
    response.headers.update(_HEADERS)
    return response


# The roles the console serves (a trigger key calls the trigger API, not the console).
CONSOLE_ROLES = ("admin", "marketer")


async def sign_in(request: Request) -> Response:
    """Trades an API key for a session cookie (the key is checked like a bearer key)."""
    csrf = request.cookies.get(CSRF_COOKIE)
    check_csrf(request, csrf)
    assert csrf is not None
    body = require_object(await read_json(request))
    reject_unknown(body, {"api_key"})
    key = get_str(body, "api_key", required=True, max_length=512)
    assert key is not None
    ctx = context(request)
    client = request.client.host if request.client is not None else None
    principal = await principal_of(ctx.keys, key, client)  # wrong keys count as a bearer's do
    if principal.role not in CONSOLE_ROLES:  # a session that could open no page of it
        raise DomainError(
            f"the console is for admin and marketer keys; this key has role {principal.role!r}",
            403,
            "Forbidden",
        )
    response = JSONResponse({"role": principal.role, "key_id": principal.key_id})
    # The CSRF cookie lives as long as the session bound to it: a browser restarted within
    # the session still sends both.
    response.set_cookie(
        CSRF_COOKIE,
        csrf,
        max_age=SESSION_SECONDS,
        path="/",
        samesite="strict",
        secure=_secure(request),
    )
    response.set_cookie(
        SESSION_COOKIE,
        await new_session(ctx, principal, key, csrf),
        max_age=SESSION_SECONDS,
        path="/",
        httponly=True,
        samesite="strict",
        secure=_secure(request),
    )
    return response


async def whoami(request: Request) -> Response:
    principal = await authorize(request, "marketer", "trigger")
    return JSONResponse({"role": principal.role, "key_id": principal.key_id})


async def sign_out(request: Request) -> Response:
    check_csrf(request, request.cookies.get(CSRF_COOKIE))
    await end_session(context(request), request.cookies.get(SESSION_COOKIE))
    response = Response(status_code=204)
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
    return response


routes = [
    resource("/console", GET=page),
    resource("/console/assets/{name}", GET=asset),
    resource("/console/session", POST=sign_in, GET=whoami, DELETE=sign_out),
]
