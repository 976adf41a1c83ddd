"""Query parameters, read one way by every endpoint: each given at most once (a repeated one
is a 400 naming it: which of its values was meant cannot be told, and the last one winning
silently hid the mistake), integers in ASCII digits within their bounds.

Every /api/v1 endpoint refuses a parameter it does not take (a 400 naming it and listing those
it takes): `?phone=` for `?mobile_phone=` silently listed every profile, `?dryrun=true` silently
published. Each endpoint declares what it takes beside its handler (`@takes("limit", "after")`;
none declared: it takes none); `routing.resource` hands the declaration to the request and
`auth.authorize` checks it once the caller is known (so a caller without a key still gets its
401). The trigger API, the tracking and unsubscribe links, the provider webhooks and the
console's pages are outside /api/v1 and take whatever is added to their URLs."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from starlette.requests import Request

from txmsg.core.errors import invalid
from txmsg.core.validation import query_int

Handler = TypeVar("Handler", bound=Callable[..., object])

# The attribute `takes` sets on a handler, and the scope key `resource` sets on its requests.
_DECLARED = "txmsg_query_params"
SCOPE_KEY = "txmsg.query_params"
# The prefix of the endpoints that refuse a parameter they do not take.
STRICT_PREFIX = "/api/v1/"


def takes(*names: str) -> Callable[[Handler], Handler]:
    """Declares the query parameters an /api/v1 endpoint reads; any other is a 400."""

    def declare(handler: Handler) -> Handler:
        setattr(handler, _DECLARED, names)
        return handler

    return declare


def declared(handler: object) -> tuple[str, ...]:
    """The query parameters `handler` takes (none unless it says so with `takes`)."""
    names = getattr(handler, _DECLARED, ())
    assert isinstance(names, tuple)
    return names


def check_known(request: Request) -> None:
    """A 400 naming the first query parameter the endpoint does not take, when it is one that
    refuses them (resource() put what it takes in the scope); nothing to do without a query."""
    names: tuple[str, ...] | None = request.scope.get(SCOPE_KEY)
    if names is None or not request.scope.get("query_string"):
        return
    for name in request.query_params:
        if name not in names:
            listed = "takes " + ", ".join(names) if names else "takes no query parameter"
            detail = f"is not a query parameter of this operation (it {listed})"
            raise invalid(name, detail, in_header=True)


def query(request: Request) -> dict[str, str]:
    """The request's query parameters, each given once; a 400 naming one given twice."""
    params = request.query_params
    for name in params:
        if len(params.getlist(name)) > 1:
            raise invalid(name, "must be given once", in_header=True)
    return dict(params)


def int_param(params: dict[str, str], name: str, default: int, low: int, high: int) -> int:
    """An integer query parameter from `low` to `high`, `default` when absent (an empty
    value is malformed, not absent: a 400)."""
    raw = params.get(name)
    return default if raw is None else query_int(raw, name, low, high)
