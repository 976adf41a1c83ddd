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

import re
from datetime import datetime

from txmsg.core import cursor_token

# `p1.` + a profile id (128 characters at most) + `.` + 16 hex digits, in base64.
MAX_CURSOR_CHARS = 200
# The profile id's own shape (core.profiles' _PROFILE_ID): it may hold dots, the digest may not.
_PAYLOAD = re.compile(r"p1\.([A-Za-z0-9][A-Za-z0-9._:@+-]{0,127})\.([0-9a-f]{16})\Z")


def query_digest(
    email: str | None, mobile_phone: str | None, updated_since: datetime | None
) -> str:
    """The listing's filters, as normalized (`Ada@Example.org` and `ada@example.org` are one)."""
    return cursor_token.digest(
        email or "", mobile_phone or "", updated_since.isoformat() if updated_since else ""
    )


def encode(profile_id: str, digest: str) -> str:
    """The cursor of the page after the one ending with `profile_id`."""
    return cursor_token.pack(f"p1.{profile_id}.{digest}")


def decode(text: str, digest: str) -> str:
    """The profile id the cursor `text` goes on after: a 400 naming `cursor` when it is none, a
    422 when it is another listing's."""
    found = _PAYLOAD.match(cursor_token.unpack(text, MAX_CURSOR_CHARS))
    if found is None:
        raise cursor_token.not_a_cursor()
    cursor_token.check_listing(found[2], digest, "email, mobile_phone and updated_since")
    return found[1]
