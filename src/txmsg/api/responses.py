"""JSON and problem+json answers (orjson: the trigger path serialises on every call)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import orjson
from starlette.responses import Response

from txmsg.core.errors import DomainError
from txmsg.core.timeutil import isoformat


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return isoformat(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def dumps(value: Any) -> bytes:
    # Passthrough: every date-time goes through one format (UTC, milliseconds, `Z`).
    return orjson.dumps(value, default=_default, option=orjson.OPT_PASSTHROUGH_DATETIME)


class JSONResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return dumps(content)


# A problem repeats what the caller sent (an unknown field's name, a value that is not a
# date): cut, so that an answer is never much larger than what it is about.
MAX_DETAIL = 500
MAX_NAME = 200  # an error's field and pointer
_BOUNDS = {"detail": MAX_DETAIL, "field": MAX_NAME, "pointer": MAX_NAME}


def _bounded(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def problem_body(
    status: int, title: str, detail: str, errors: list[dict[str, str]] | None = None
) -> dict[str, Any]:
    """An RFC 9457 problem's members (also embedded, e.g. in a batch trigger's item)."""
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": title,
        "status": status,
        "detail": _bounded(detail, MAX_DETAIL),
    }
    if errors:
        body["errors"] = [
            {k: _bounded(v, _BOUNDS[k]) if k in _BOUNDS else v for k, v in e.items()}
            for e in errors
        ]
    return body


def problem(
    status: int,
    title: str,
    detail: str,
    errors: list[dict[str, str]] | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    return Response(
        dumps(problem_body(status, title, detail, errors)),
        status_code=status,
        headers=headers,
        media_type="application/problem+json",
    )


def problem_of(error: DomainError) -> dict[str, Any]:
    """The problem members of `error`."""
    body = problem_body(
        error.status, error.title, error.detail, [e.as_dict() for e in error.errors] or None
    )
    body.update(error.members)
    return body


def problem_from(error: DomainError) -> Response:
    headers = {"WWW-Authenticate": "Bearer"} if error.status == 401 else {}
    headers.update(error.headers)
    if error.members:
        return Response(
            dumps(problem_of(error)),
            status_code=error.status,
            headers=headers or None,
            media_type="application/problem+json",
        )
    return problem(
        error.status,
        error.title,
        error.detail,
        [e.as_dict() for e in error.errors] or None,
        headers or None,
    )
