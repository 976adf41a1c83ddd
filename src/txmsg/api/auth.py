"""Bearer API keys and roles: admin (everything), marketer (messages), trigger (events).

Requests are limited per key (the key's `rate_limit`, or the installation's default for
trigger keys) and wrong-key requests per client address: over a limit, 429 with `Retry-After`
and the IETF draft's `RateLimit-Policy` / `RateLimit` headers (store/key_limits.py).
"""

from __future__ import annotations

import math

from starlette.requests import Request

from txmsg.api.context import AppContext, context
from txmsg.api.query import check_known
from txmsg.api.sessions import SESSION_COOKIE, session_principal
from txmsg.core.errors import DomainError
from txmsg.store.key_limits import Verdict
from txmsg.store.keys import KeyResolver, Principal


async def authorize(request: Request, *roles: str, cost: int = 1) -> Principal:
    """The caller's principal if its role is `admin` or one of `roles`; 401/403 otherwise.

    Without an `Authorization` header, the console's session cookie stands for the key. The
    request spends `cost` of the key's tokens (a batch trigger: 0 here, then its items with
    `spend`).

    Then, on an /api/v1 endpoint, a query parameter it does not take is a 400 (query.py): after
    the 401/403, as a repeated one is."""
    ctx = context(request)
    header = request.headers.get("authorization")
    if header is None and SESSION_COOKIE in request.cookies:
        principal = await session_principal(ctx, request)
        check_role(principal, roles)
        if cost:
            await spend(ctx, principal, cost)
    else:
        client = request.client.host if request.client is not None else None
        principal = await authorize_header(ctx, header, roles, client=client, cost=cost)
    check_known(request)
    return principal


async def authorize_header(
    ctx: AppContext,
    header: str | None,
    roles: tuple[str, ...],
    *,
    client: str | None = None,
    cost: int = 1,
) -> Principal:
    """`authorize` from the raw `Authorization` header (for the raw ASGI trigger endpoint)."""
    scheme, _, secret = (header or "").partition(" ")
    secret = secret.strip()
    if scheme.lower() != "bearer" or not secret:
        raise DomainError(
            "missing bearer API key (Authorization: Bearer <key>)", 401, "Unauthorized"
        )
    principal = await principal_of(ctx.keys, secret, client)
    check_role(principal, roles)
    if cost:
        await spend(ctx, principal, cost)
    return principal


async def principal_of(keys: KeyResolver, secret: str, client: str | None) -> Principal:
    """The principal of an API key's secret (a bearer key, or one signing in to the console);
    401 for a wrong one, 429 once its client has sent too many wrong ones."""
    return keys.cached(secret) or await _resolve(keys, secret, client)


async def _resolve(keys: KeyResolver, secret: str, client: str | None) -> Principal:
    """A secret not known in memory: looked up, and counted against its client when wrong."""
    failures = keys.failure_limit
    scope = f"client:{client}"
    if client is not None and failures is not None:
        known = keys.limiter.exhausted(scope, failures)
        if known is not None:  # refused without looking the key up, unless it was good lately
            principal = await keys.resolve(secret) if keys.known_good(secret) else None
            if principal is not None:
                return principal
            raise too_many(known, "too many requests with a wrong API key from this client")
    principal = await keys.resolve(secret)
    if principal is None:
        if client is not None and failures is not None:
            verdict = await keys.limiter.spend(scope, failures)
            if not verdict.allowed:
                raise too_many(verdict, "too many requests with a wrong API key from this client")
        raise DomainError("unknown or revoked API key", 401, "Unauthorized")
    return principal


def check_role(principal: Principal, roles: tuple[str, ...]) -> None:
    """403 unless the principal is an admin or has one of `roles`."""
    if principal.role != "admin" and principal.role not in roles:
        needed = " or ".join(("admin", *roles))
        raise DomainError(
            f"this API key has role '{principal.role}'; this operation needs {needed}",
            403,
            "Forbidden",
        )


async def spend(ctx: AppContext, principal: Principal, cost: int) -> None:
    """Take `cost` tokens of the key's limit (if it has one); 429 when it has not enough."""
    limit = ctx.keys.limit_of(principal)
    if limit is None or cost <= 0:
        return
    verdict = await ctx.keys.limiter.spend(f"key:{principal.key_id}", limit, cost)
    if not verdict.allowed:
        detail = f"this API key's rate limit is reached ({limit.per_second}/s, burst {limit.burst})"
        raise too_many(verdict, detail)


def too_many(verdict: Verdict, detail: str) -> DomainError:
    reset = max(1, math.ceil(verdict.reset_seconds))
    return DomainError(
        detail,
        429,
        "Too Many Requests",
        headers={
            "Retry-After": str(reset),
            "RateLimit-Policy": verdict.limit.policy(),
            "RateLimit": f'"bucket";r={verdict.remaining};t={reset}',
        },
    )
