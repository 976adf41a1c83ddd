"""Absolute http and https URLs the engine calls: webhook receivers, Twilio's API and status
callbacks, S3-compatible endpoints.

Parsed as the engine's HTTP client (httpx) parses a URL when it builds a request, which is
stricter than `urlsplit`: a bad IDNA label (`xn--`), an IP address out of range or a broken
IPv6 literal would otherwise be refused there, at every attempt, long after the URL was
accepted. `httpx.URL` only parses: no I/O here.
"""

from __future__ import annotations

import httpx

from txmsg.core.errors import invalid


def http_url(value: str, field_name: str) -> httpx.URL:
    """`value` parsed, or a 400 naming `field_name`: an absolute http or https URL with a
    host, a port from 1 to 65535, no credentials (each use has a write-only field of its own
    for secrets, and a URL is shown back as given), no spaces nor control characters (httpx
    quotes some of them into the host)."""
    if any(c.isspace() or not c.isprintable() for c in value):
        raise invalid(field_name, "must not hold spaces or control characters")
    try:
        parsed = httpx.URL(value)
        host, port, userinfo = parsed.host, parsed.port, parsed.userinfo
    except (httpx.InvalidURL, ValueError) as exc:  # idna's errors are ValueErrors
        raise invalid(field_name, f"is not a valid URL ({exc})") from None
    if parsed.scheme not in ("http", "https") or not host:
        raise invalid(field_name, "must be an absolute http or https URL")
    if userinfo:
        raise invalid(field_name, "must not hold credentials")
    if port is not None and not 1 <= port <= 65535:
        raise invalid(field_name, "must have a port from 1 to 65535")
    return parsed
