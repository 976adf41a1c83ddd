"""The profiles list's cursor: where a page ended, opaque to clients.

Pages go by `profile_id` (the primary key, which never changes), so a walk sees each profile
that existed when it began and still exists when its page is read exactly once; a profile
deleted meanwhile is skipped, even the one a cursor names (the next page starts strictly after
its id, whether or not the row is still there). The cursor is base64url (no padding) of
`p1.<profile_id>.<query digest>`; the digest ties it to the listing it came from (email,
mobile_phone, updated_since), so a cursor carried over to another listing is refused instead
of silently skipping or repeating profiles (a 422 naming `cursor`), as the latest-events
list's (core/event_cursor.py). Anything else is a 400 naming `cursor`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from datetime import datetime

from txmsg.core.errors import DomainError, invalid, refused

# `p1.` + a profile id (128 characters at most) + `.` + 16 hex digits, in base64.
MAX_CURSOR_CHARS = 200
_TEXT = re.compile(r"[A-Za-z0-9_-]{1,%d}\Z" % MAX_CURSOR_CHARS)  # noqa: UP031
# The profile id's own shape (core.profiles' _PROFILE_ID): it may hold dots, the digest may not.
_PAYLOAD = re.compile(r"p1\.([A-Za-z0-9][A-Za-z0-9._:@+-]{0,127})\.([0-9a-f]{16})\Z")


def query_digest(
    email: str | None, mobile_phone: str | None, updated_since: datetime | None
) -> str:
    """The listing's filters, as normalized (`Ada@Example.org` and `ada@example.org` are one)."""
    text = "\0".join(
        (email or "", mobile_phone or "", updated_since.isoformat() if updated_since else "")
    )
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def encode(profile_id: str, digest: str) -> str:
    """The cursor of the page after the one ending with `profile_id`."""
    raw = f"p1.{profile_id}.{digest}".encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


_NOT_ONE = "is not a cursor of this list: pass `next_cursor` of the previous page as it is"


def _bad() -> DomainError:
    return invalid("cursor", _NOT_ONE, in_header=True)


def decode(text: str, digest: str) -> str:
    """The profile id the cursor `text` goes on after: a 400 naming `cursor` when it is none, a
    422 when it is another listing's."""
    if not _TEXT.match(text):
        raise _bad()
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode("ascii")
    except (binascii.Error, ValueError):
        raise _bad() from None
    found = _PAYLOAD.match(raw)
    if found is None:
        raise _bad()
    if found[2] != digest:
        raise refused(
            "cursor",
            "was given for another listing: keep email, mobile_phone and updated_since as they"
            " were",
            in_header=True,
        )
    return found[1]
