"""`serve --access-log`: request lines without the personal data and tokens their paths hold.

uvicorn logs each request's path and query string (logger `uvicorn.access`). Some paths name
a recipient (an address, a phone number, a PKey, a profile id) or carry a token that acts on
its own (unsubscribe, open and click tracking: a logged one lets its reader use it). A filter
on that logger rewrites the path before any handler sees it: those segments read
`[redacted]`, and so does every query value (`?email=[redacted]`), since query strings carry
such data too. It runs only with `--access-log`: without it uvicorn logs no request line.
"""

from __future__ import annotations

import logging
import re

REDACTED = "[redacted]"
# Path parameters whose values are personal data or act on their own.
SENSITIVE = frozenset({"address", "PKey", "token", "profile_id"})
# Every route with one of them (tests/processes/test_access_log.py checks none is missing).
TEMPLATES = (
    "/rest/mc/{eventId}/{PKey}",
    "/api/v1/events/{eventId}/{PKey}/delivery-log",
    "/api/v1/profiles/{profile_id}",
    "/api/v1/suppressions/{channel}/{address}",
    "/api/v1/denylist/{channel}/{address}",
    "/api/v1/quarantine/{channel}/{address}",
    "/unsubscribe/{token}",
    "/t/o/{token}",
    "/t/c/{token}",
)
# Routes a template above would otherwise take for one of its own: kept as they are.
KEPT = re.compile(r"/rest/mc/[^/]*/batch\Z")
_PARAM = re.compile(r"\{(\w+)\}\Z")


class _Rule:
    """A template: the path up to its first sensitive parameter, and the segments after."""

    __slots__ = ("head", "tail")

    def __init__(self, template: str) -> None:
        segments = template.strip("/").split("/")
        first = next(i for i, s in enumerate(segments) if _param(s) in SENSITIVE)
        head = "".join("/" + ("[^/]*" if _param(s) else re.escape(s)) for s in segments[:first])
        self.head = re.compile(head + "/")
        # Per segment from the first sensitive one: the literal kept, or None (redacted).
        self.tail = [
            None if (name := _param(s)) in SENSITIVE else ("" if name else s)
            for s in segments[first:]
        ]

    def redact(self, rest: str) -> str:
        """`rest`, the path after the head, with what the template does not name redacted:
        a segment past the template's end may be part of an address holding a slash."""
        out = []
        for i, segment in enumerate(rest.split("/")):
            kept = self.tail[i] if i < len(self.tail) else None
            out.append(segment if kept == "" or (kept and segment == kept) else REDACTED)
        return "/".join(out)


def _param(segment: str) -> str | None:
    match = _PARAM.fullmatch(segment)
    return match.group(1) if match else None


_RULES = tuple(_Rule(t) for t in TEMPLATES)


def redact(path_and_query: str) -> str:
    """A request target as uvicorn logs it, with what it must not show redacted."""
    path, question, query = path_and_query.partition("?")
    if not KEPT.match(path):
        for rule in _RULES:
            head = rule.head.match(path)
            if head is not None:
                path = path[: head.end()] + rule.redact(path[head.end() :])
                break
    if question:
        path += "?" + "&".join(_redact_pair(pair) for pair in query.split("&"))
    return path


def _redact_pair(pair: str) -> str:
    name, equals, _value = pair.partition("=")
    return f"{name}={REDACTED}" if equals else REDACTED  # a bare word may be a value too


class RedactPaths(logging.Filter):
    """On `uvicorn.access`: its records' arguments are (client, method, target, version,
    status)."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) == 5 and isinstance(args[2], str):
            record.args = (*args[:2], redact(args[2]), *args[3:])
        return True


def install() -> None:
    """Redact `uvicorn.access`'s request lines in this process (once, however often called)."""
    logger = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, RedactPaths) for f in logger.filters):
        logger.addFilter(RedactPaths())
