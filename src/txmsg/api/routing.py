"""One route per path, dispatching on the method, so a 405 lists every allowed method."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from txmsg.api.query import SCOPE_KEY, STRICT_PREFIX, declared
from txmsg.core.errors import not_found

Endpoint = Callable[[Request], Awaitable[Response]]


def resource(path: str, **handlers: Endpoint) -> Route:
    """`resource("/x", GET=read, PATCH=update)`: Starlette answers other methods with 405.

    Under /api/v1, each request carries the query parameters its handler takes (`query.takes`),
    for `authorize` to refuse any other."""
    by_method = {method.upper(): handler for method, handler in handlers.items()}
    taken = (
        {method: declared(handler) for method, handler in by_method.items()}
        if path.startswith(STRICT_PREFIX)
        else None
    )
    if taken is None and any(declared(h) for h in by_method.values()):
        raise ValueError(f"{path}: query parameters are only checked under {STRICT_PREFIX}")

    async def endpoint(request: Request) -> Response:
        if any("\x00" in str(v) for v in request.path_params.values()):
            # No name holds a NUL; PostgreSQL would refuse it as a parameter.
            raise not_found("no such resource")
        method = "GET" if request.method == "HEAD" else request.method
        if taken is not None:
            request.scope[SCOPE_KEY] = taken[method]
        return await by_method[method](request)

    endpoint.__name__ = "_".join(h.__name__ for h in by_method.values())
    return Route(path, endpoint, methods=list(by_method))


class ASGIEndpoint:
    """Marks `fn(scope, receive, send)` as a raw ASGI endpoint.

    Starlette wraps a plain function in its Request/Response machinery; an object with
    `__call__` is mounted as it is.
    """

    __slots__ = ("_fn",)

    def __init__(self, fn: Callable[[Scope, Receive, Send], Awaitable[None]]) -> None:
        self._fn = fn

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._fn(scope, receive, send)
