"""Open and click tracking of HTML emails: settings, signed links, and the HTML rewrite.

When a channel configuration tracks opens, its HTML emails get a 1x1 pixel whose URL carries a
token signing the message's PKey; when it tracks clicks, their `http(s)` links go through a
redirect whose token signs the PKey and the original URL. The redirect needs no lookup and goes
nowhere but to a URL the server itself signed: it is no open redirect, and tokens cannot be
forged or enumerated (core/signing.py, with a secret of its own).

The rewrite is one linear scan for <a> tags with precompiled regular expressions, each tag's
attributes read one by one and href values decoded as browsers decode attributes: no DOM, no
template work per message. Not rewritten: non-http(s) links (mailto:, tel:, anchors), links
to this server's unsubscribe page or tracking endpoints, links marked `data-txmsg-notrack`,
unquoted `href` values, URLs longer than MAX_TRACKED_URL and URLs whose token would be
too long to verify. The text part is never touched.
"""

from __future__ import annotations

import contextlib
import html
import re
from dataclasses import dataclass
from html.entities import html5 as _ENTITIES
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import idna

from txmsg.core.signing import MAX_TOKEN_LENGTH, Signer, sign, verify
from txmsg.core.unsubscribe import PREFIX as UNSUBSCRIBE_PREFIX
from txmsg.core.validation import get_bool, reject_unknown, require_object

SECRET_NAME = "tracking"  # the server secret tracking tokens are signed with (store/secrets.py)
OPEN_PREFIX = "/t/o/"
CLICK_PREFIX = "/t/c/"
TRACKING_PREFIX = "/t/"
FIELDS = ("opens", "clicks")
# Longer links stay as written, and so do those whose token would pass
# signing.MAX_TOKEN_LENGTH (a non-ASCII character takes up to 4 bytes, then base64).
MAX_TRACKED_URL = 2048

_OPEN, _CLICK = "o", "c"  # first token field: an open token is never a click token


@dataclass(frozen=True, slots=True)
class TrackingSettings:
    opens: bool = False
    clicks: bool = False

    @property
    def on(self) -> bool:
        return self.opens or self.clicks

    def as_dict(self) -> dict[str, bool]:
        return {"opens": self.opens, "clicks": self.clicks}


OFF = TrackingSettings()


def parse_tracking(raw: object, current: TrackingSettings = OFF) -> TrackingSettings:
    """A channel configuration's `tracking` object; on update, keys left out keep their value."""
    body = require_object(raw, "tracking")
    reject_unknown(body, set(FIELDS), "tracking.")
    opens = get_bool(body, "opens", prefix="tracking.", default=current.opens)
    clicks = get_bool(body, "clicks", prefix="tracking.", default=current.clicks)
    return TrackingSettings(bool(opens), bool(clicks))


def tracking_of(settings: dict[str, Any]) -> TrackingSettings:
    """The tracking stored in a channel configuration's settings (off when absent)."""
    stored = settings.get("tracking")
    if not stored:
        return OFF
    return TrackingSettings(bool(stored.get("opens")), bool(stored.get("clicks")))


# --- tokens ----------------------------------------------------------------------------------


def open_token(secret: str, pkey: str) -> str:
    return sign(secret, _OPEN, pkey)


def click_token(secret: str, pkey: str, url: str) -> str:
    return sign(secret, _CLICK, pkey, url)


def read_open_token(secret: str, token: str) -> str | None:
    """The PKey of a genuine open token; None for anything forged, altered or malformed."""
    fields = verify(secret, token, 2)
    return fields[1] if fields is not None and fields[0] == _OPEN else None


def read_click_token(secret: str, token: str) -> tuple[str, str] | None:
    """(PKey, URL) of a genuine click token; None for anything forged, altered or malformed."""
    fields = verify(secret, token, 3)
    if fields is None or fields[0] != _CLICK or not _TRACKABLE.match(fields[2]):
        return None
    return fields[1], fields[2]


_PRINTABLE_ASCII = "".join(map(chr, range(0x21, 0x7F)))


def redirect_location(url: str) -> str:
    """The Location header for a signed URL: as written, a non-ASCII host in IDNA (as browsers
    send it; UTS 46 mapping), other non-ASCII characters percent-encoded."""
    if url.isascii():
        return url
    scheme, _, after = url.partition("://")  # a signed URL is always an http(s) one
    end = min((at for at in map(after.find, "/?#") if at >= 0), default=len(after))
    authority, rest = after[:end], after[end:]
    userinfo, at, host_port = authority.rpartition("@")
    host, colon, port = host_port.partition(":")  # rejoined as is: IPv6 literals are ASCII
    if not host.isascii():
        # On failure the host is left to the percent-encoding, which browsers decode back.
        with contextlib.suppress(idna.IDNAError):
            host = idna.encode(host, uts46=True).decode("ascii")
    ascii_url = f"{scheme}://{userinfo}{at}{host}{colon}{port}{rest}"
    return quote(ascii_url, safe=_PRINTABLE_ASCII)


# --- the HTML rewrite ------------------------------------------------------------------------

# An <a> tag, cut at the next "<" or ">": each scan stops at the next tag, so finding them all
# is linear (a lazy match up to "href" was quadratic on "<a " without ">"). A "<" or ">" inside
# a quoted value cuts the tag short: an href after it stays as written.
_TAG = re.compile(r"<a\s[^<>]*>", re.IGNORECASE)
# One attribute of a tag: its name, and a quoted or unquoted value if it has one. Parsing the
# tag attribute by attribute keeps `href=` inside another attribute's value from counting.
_ATTRIBUTE = re.compile(r"""([^\s"'<>/=]+)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'=<>`]+)))?""")
_NOTRACK = "data-txmsg-notrack"
_BODY_END = re.compile(r"</body\s*>", re.IGNORECASE)
# An absolute http(s) URL with no whitespace or control character (it goes in a header).
_TRACKABLE = re.compile(r"https?://[^\x00-\x20\x7f]+\Z", re.IGNORECASE)
_HTML_SPACE = " \t\n\r\f"  # what browsers strip around a URL attribute


class LinkTracker:
    """Rewrites the rendered HTML of one server's messages; built once, used for every send."""

    def __init__(self, secret: str, public_url: str) -> None:
        base = public_url.rstrip("/")
        self._signer = Signer(secret)
        self._open_base = base + OPEN_PREFIX
        self._click_base = base + CLICK_PREFIX
        # This server's own links are never rewritten: the unsubscribe page (a scanner
        # following a tracked copy must not look like the recipient), and tracking links.
        self._origin = _origin(base)
        path = urlsplit(base).path
        self._own_paths = (path + UNSUBSCRIBE_PREFIX, path + TRACKING_PREFIX)

    def _is_own(self, url: str) -> bool:
        """Whether `url` leads to this server's unsubscribe page or tracking endpoints: scheme
        and host in any case, the default port written or not, the path percent-decoded (as
        the server routes it)."""
        unsubscribe, tracking = self._own_paths
        if "%" not in url and unsubscribe not in url and tracking not in url:
            return False  # the usual case, without parsing (paths are case-sensitive)
        if _origin(url) != self._origin:
            return False
        return unquote(urlsplit(url).path).startswith(self._own_paths)

    def open_url(self, pkey: str) -> str:
        return self._open_base + self._signer.sign(_OPEN, pkey)

    def click_url(self, pkey: str, url: str) -> str:
        return self._click_base + self._signer.sign(_CLICK, pkey, url)

    def rewrite(self, body: str, pkey: str, tracking: TrackingSettings) -> str:
        if tracking.clicks:
            body = self._rewrite_links(body, pkey)
        if tracking.opens:
            body = _with_pixel(body, self.open_url(pkey))
        return body

    def _rewrite_links(self, body: str, pkey: str) -> str:
        parts: list[str] = []
        done = 0  # body[:done] is in parts
        for tag in _TAG.finditer(body):
            href = _tracked_href(tag.group(0))
            if href is None:
                continue
            at, end, value = href
            url = (decode_attribute(value) if "&" in value else value).strip(_HTML_SPACE)
            if len(url) > MAX_TRACKED_URL or not _TRACKABLE.match(url) or self._is_own(url):
                continue
            token = self._signer.sign(_CLICK, pkey, url)
            if len(token) > MAX_TOKEN_LENGTH:  # non-ASCII URLs grow: a longer token is refused
                continue
            start = tag.start()
            parts += (body[done : start + at], self._click_base, token)
            done = start + end
        if not parts:
            return body
        parts.append(body[done:])
        return "".join(parts)


_DEFAULT_PORTS = {"http": 80, "https": 443}


def _origin(url: str) -> tuple[str, str, int | None] | None:
    """(scheme, host, port) of a URL, normalised as browsers compare them; None if malformed."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").rstrip(".")
    return scheme, host, port if port is not None else _DEFAULT_PORTS.get(scheme)


def _tracked_href(tag: str) -> tuple[int, int, str] | None:
    """(start, end, value) in `tag` of its quoted href, if it has one and no
    data-txmsg-notrack attribute. The first of repeated attributes counts, as in browsers."""
    href: tuple[int, int, str] | None = None
    seen_href = False
    for attribute in _ATTRIBUTE.finditer(tag, 3, len(tag) - 1):
        name = attribute[1].lower()
        if name == "href":
            # Group 2 or 3: a double- or single-quoted value; unquoted ones stay as written.
            value = attribute.lastindex
            if not seen_href and (value == 2 or value == 3):
                href = (attribute.start(value), attribute.end(value), attribute[value])
            seen_href = True
        elif name == _NOTRACK:
            return None
    return href


# A character reference: numeric (with or without ";"), or a named one's alphanumeric run.
_CHARREF = re.compile(r"&(?:(#[0-9]+;?|#[xX][0-9a-fA-F]+;?)|([A-Za-z0-9]+)(;?))")


def decode_attribute(value: str) -> str:
    """An attribute value's character references decoded as browsers do (the HTML spec's
    rules for attributes), which `html.unescape` does not: in `?lang=en&region=eu` a browser
    keeps `&region` as written, where `html.unescape` gives `®ion`. Named references count
    with their ";", or without it only for the legacy names (`&amp`, `&copy`, ...) when neither
    a letter, a digit nor "=" follows; numeric ones with or without ";"."""
    if value.count("&") == value.count("&amp;"):  # the usual case: a fast path
        return value.replace("&amp;", "&")
    return _CHARREF.sub(_charref, value)


def _charref(ref: re.Match[str]) -> str:
    numeric, name, semicolon = ref.groups()
    if numeric is not None:
        return html.unescape(ref.group(0))  # the spec's numeric rules (0, surrogates, C1)
    if semicolon:
        return _ENTITIES.get(name + ";", ref.group(0))
    # A legacy name without ";": the run ends at a non-alphanumeric character by construction.
    at = ref.end()
    if name in _ENTITIES and ref.string[at : at + 1] != "=":
        return _ENTITIES[name]
    return ref.group(0)


def _with_pixel(body: str, url: str) -> str:
    pixel = f'<img src="{url}" width="1" height="1" alt="" style="border:0;width:1px;height:1px">'
    ends = list(_BODY_END.finditer(body))
    if not ends:
        return body + pixel
    at = ends[-1].start()
    return body[:at] + pixel + body[at:]
