"""Query parameters, read one way by every endpoint: each given at most once (a repeated one
is a 400 naming it: which of its values was meant cannot be told, and the last one winning
silently hid the mistake), integers in ASCII digits within their bounds."""

from __future__ import annotations

from starlette.requests import Request

from txmsg.core.errors import invalid
from txmsg.core.validation import query_int


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
