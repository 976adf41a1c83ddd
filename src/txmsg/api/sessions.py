"""Console sessions: an API key's hash in a signed, HttpOnly, SameSite=Strict cookie.

The console calls the same `/api/v1` operations as any client, with the same roles: a request
without an `Authorization` header is authorized by its session cookie instead, and when it may
change anything (any method but GET/HEAD) it must also carry the session's CSRF token in the
`X-CSRF-Token` header (double submit: a page of another site can neither read the token nor
set the header). The key itself never leaves the sign-in request; revoking it ends its sessions.
"""

from __future__ import annotations

import hmac
import secrets
import time

from starlette.requests import Request

from txmsg.api.context import AppContext
from txmsg.core.errors import DomainError
from txmsg.core.signing import Signer
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
    return signer.sign(hash_key(api_key), str(expires), csrf)


async def session_principal(ctx: AppContext, request: Request) -> Principal:
    """The principal of the request's session cookie; 401 without a valid one, 403 when an
    unsafe request lacks the session's CSRF token."""
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        raise _unauthorized("missing bearer API key (Authorization: Bearer <key>)")
    secret = await ctx.secrets.get(SESSION_SECRET)
    fields = Signer(secret).verify(token, 3) if secret is not None else None
    if fields is None or not fields[1].isdigit() or int(fields[1]) < time.time():
        raise _unauthorized("the console session is invalid or has expired: sign in again")
    digest, _, csrf = fields
    if request.method not in SAFE_METHODS:
        check_csrf(request, csrf)
    principal = await ctx.keys.resolve_digest(digest)
    if principal is None:
        raise _unauthorized("the session's API key is unknown or revoked: sign in again")
    return principal
