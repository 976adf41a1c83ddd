"""Bearer API keys and roles: admin (everything), marketer (messages), trigger (events)."""

from __future__ import annotations

from starlette.requests import Request

from txmsg.api.context import AppContext, context
from txmsg.api.sessions import SESSION_COOKIE, session_principal
from txmsg.core.errors import DomainError
from txmsg.store.keys import Principal


async def authorize(request: Request, *roles: str) -> Principal:
    """The caller's principal if its role is `admin` or one of `roles`; 401/403 otherwise.

    Without an `Authorization` header, the console's session cookie stands for the key."""
    header = request.headers.get("authorization")
    if header is None and SESSION_COOKIE in request.cookies:
        principal = await session_principal(context(request), request)
        check_role(principal, roles)
        return principal
    return await authorize_header(context(request), header, roles)


async def authorize_header(
    ctx: AppContext, header: str | None, roles: tuple[str, ...]
) -> Principal:
    """`authorize` from the raw `Authorization` header (for the raw ASGI trigger endpoint)."""
    scheme, _, secret = (header or "").partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        raise DomainError(
            "missing bearer API key (Authorization: Bearer <key>)", 401, "Unauthorized"
        )
    principal = await ctx.keys.resolve(secret.strip())
    if principal is None:
        raise DomainError("unknown or revoked API key", 401, "Unauthorized")
    check_role(principal, roles)
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
