"""Console sessions: a signed, HttpOnly, SameSite=Strict cookie that stands for an API key.

The console calls the same `/api/v1` operations as any client, with the same roles: a request
without an `Authorization` header is authorized by its session cookie instead, and when it may
change anything (any method but GET/HEAD) it must also carry the session's CSRF token in the
`X-CSRF-Token` header (double submit: a page of another site can neither read the token nor
set the header). The key itself never leaves the sign-in request.

The cookie holds the key's id and a binding to its secret: HMAC-SHA256 of the key's hash under
the `console-session` server secret (its own purpose, apart from the cookie's signature), cut
to 128 bits. The cookie is signed, not encrypted: it must not carry the key's hash, which for a
weak key (an admin-chosen `TXMSG_ADMIN_KEY`) is an offline guess away from the key. Each
request looks the key up by id and compares the binding with its current secret's (or, within a
rotation's grace, its old one's) in constant time: revoking the key ends its sessions, and
rotating it ends those opened with the old secret when that secret's grace ends. Each session
has an id: signing out records it (store/console_sessions.py), so that a copy of the cookie is
refused too. A cookie of another form (one made before this one, which held the hash) is no
session: its holder signs in again.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime

from starlette.requests import Request

from txmsg.api.context import AppContext
from txmsg.core.errors import DomainError
from txmsg.core.signing import Signer, b32_signature, verify_b32
from txmsg.core.validation import ascii_digits
from txmsg.store import console_sessions
from txmsg.store.keys import Principal, hash_key

SESSION_COOKIE = "txmsg_session"
CSRF_COOKIE = "txmsg_csrf"
CSRF_HEADER = "x-csrf-token"
SESSION_SECRET = "console-session"
SESSION_SECONDS = 8 * 3600
BINDING_PURPOSE = "console-session-key"
BINDING_BYTES = 16  # 128 bits, 26 characters
SESSION_FIELDS = 5  # key id, binding, expiry, CSRF token, session id
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


def key_binding(secret: str, digest: str) -> str:
    """What a session holds of its key: a keyed hash of the key's hash `digest`."""
    return b32_signature(secret, BINDING_PURPOSE, digest, size=BINDING_BYTES)


async def new_session(ctx: AppContext, principal: Principal, api_key: str, csrf: str) -> str:
    """The cookie value of a session for `api_key` (whose principal is `principal`), bound to
    the `csrf` token."""
    secret = await ctx.secrets.get_or_create(SESSION_SECRET)
    binding = key_binding(secret, hash_key(api_key))
    # The database's time: another API process checks it.
    expires = int(ctx.db.clock.now().timestamp()) + SESSION_SECONDS
    return Signer(secret).sign(
        principal.key_id, binding, str(expires), csrf, secrets.token_urlsafe(16)
    )


@dataclass(frozen=True, slots=True)
class Session:
    key_id: str
    binding: str  # key_binding of the key's hash at sign-in
    expires: int  # Unix time
    csrf: str
    session_id: str
    secret: str = field(repr=False)  # the server secret that signed it

    def binds(self, digest: str) -> bool:
        """Whether the session was opened with the secret whose hash is `digest` (constant
        time)."""
        return verify_b32(self.secret, BINDING_PURPOSE, digest, self.binding, size=BINDING_BYTES)


async def read_session(ctx: AppContext, token: str) -> Session | None:
    """The session of a cookie value: None if forged, altered, of an older form, over or
    signed out."""
    secret = await ctx.secrets.get(SESSION_SECRET)
    if secret is None:
        return None
    fields = Signer(secret).verify(token, SESSION_FIELDS)
    now = ctx.db.clock.now().timestamp()  # the database's time, as its signer's
    if fields is None or not ascii_digits(fields[2]) or int(fields[2]) < now:
        return None
    session = Session(fields[0], fields[1], int(fields[2]), fields[3], fields[4], secret)
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
    principal = await ctx.keys.resolve_bound(session.key_id, session.binds)
    if principal is None:
        raise _unauthorized(
            "the session's API key is unknown, revoked or has a new secret: sign in again"
        )
    return principal


async def end_session(ctx: AppContext, token: str | None) -> None:
    """Sign the cookie's session out, if it is a live one."""
    session = await read_session(ctx, token) if token else None
    if session is not None:
        until = datetime.fromtimestamp(session.expires, UTC)
        now = ctx.db.clock.now()
        await ctx.db.write(console_sessions.sign_out_in, session.session_id, until, now)
