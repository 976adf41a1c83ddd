"""Console sessions: an API key's hash in a signed, HttpOnly, SameSite=Strict cookie.

The console calls the same `/api/v1` operations as any client, with the same roles: a request
without an `Authorization` header is authorized by its session cookie instead, and when it may
change anything (any method but GET/HEAD) it must also carry the session's CSRF token in the
`X-CSRF-Token` header (double submit: a page of another site can neither read the token nor
set the header). The key itself never leaves the sign-in request; revoking it ends its sessions.
Each session has an id: signing out records it (store/console_sessions.py), so that a copy of
the cookie is refused too.
"""

from __future__ import annotations

import hmac
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from starlette.requests import Request

from txmsg.api.context import AppContext
from txmsg.core.errors import DomainError
from txmsg.core.signing import Signer
from txmsg.store import console_sessions
from txmsg.store.keys import Principal, hash_key

SESSION_COOKIE = "txmsg_session"
CSRF_COOKIE = "txmsg_csrf"
CSRF_HEADER = "x-csrf-token"
SESSION_SECRET = "console-session"
SESSION_SECONDS = 8 * 3600
SAFE_METHODS = ("GET", "HEAD")


def _unauthorized(detail: str) -> DomainError:
    return DomainError(detail, 401, "Unauthorized")


def new_csrf_token() -> str:
    return secrets.token_urlsafe(24)


def check_csrf(request: Request, expected: str | None) -> None:
    """403 unless the request's `X-CSRF-Token` header is `expected`."""
    given = request.headers.get(CSRF_HEADER, "")
    if not expected or not hmac.compare_digest(given.encode(), expected.encode()):
        raise DomainError("missing or wrong CSRF token (X-CSRF-Token)", 403, "Forbidden")


async def new_session(ctx: AppContext, api_key: str, csrf: str) -> str:
    """The cookie value of a session for `api_key`, bound to the `csrf` token."""
    signer = Signer(await ctx.secrets.get_or_create(SESSION_SECRET))
    expires = int(time.time()) + SESSION_SECONDS
    return signer.sign(hash_key(api_key), str(expires), csrf, secrets.token_urlsafe(16))


@dataclass(frozen=True, slots=True)
class Session:
    digest: str  # the API key's hash
    expires: int  # Unix time
    csrf: str
    session_id: str


async def read_session(ctx: AppContext, token: str) -> Session | None:
    """The session of a cookie value: None if forged, altered, over or signed out."""
    secret = await ctx.secrets.get(SESSION_SECRET)
    fields = Signer(secret).verify(token, 4) if secret is not None else None
    if fields is None or not fields[1].isdigit() or int(fields[1]) < time.time():
        return None
    session = Session(fields[0], int(fields[1]), fields[2], fields[3])
    if await ctx.db.read(console_sessions.is_signed_out, session.session_id):
        return None
    return session


async def session_principal(ctx: AppContext, request: Request) -> Principal:
    """The principal of the request's session cookie; 401 without a valid one, 403 when an
    unsafe request lacks the session's CSRF token."""
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        raise _unauthorized("missing bearer API key (Authorization: Bearer <key>)")
    session = await read_session(ctx, token)
    if session is None:
        raise _unauthorized(
            "the console session is invalid, has expired or was signed out: sign in again"
        )
    if request.method not in SAFE_METHODS:
        check_csrf(request, session.csrf)
    principal = await ctx.keys.resolve_digest(session.digest)
    if principal is None:
        raise _unauthorized("the session's API key is unknown or revoked: sign in again")
    return principal


async def end_session(ctx: AppContext, token: str | None) -> None:
    """Sign the cookie's session out, if it is a live one."""
    session = await read_session(ctx, token) if token else None
    if session is not None:
        until = datetime.fromtimestamp(session.expires, UTC)
        now = ctx.db.clock.now()
        await ctx.db.write(console_sessions.sign_out_in, session.session_id, until, now)
