"""Opaque page cursors, one way for every list: base64url (no padding) of a payload that ends
with a digest of the listing's filters, so a cursor carried over to another listing is refused
(a 422 naming `cursor`) instead of silently skipping or repeating rows; anything that is not a
cursor at all is a 400 naming `cursor`. Each list (core/event_cursor.py,
core/profile_cursor.py) says what its payload holds and checks it."""

from __future__ import annotations

import base64
import binascii
import hashlib
import re

from txmsg.core.errors import DomainError, invalid, refused

_TEXT = re.compile(r"[A-Za-z0-9_-]+\Z")
_NOT_ONE = "is not a cursor of this list: pass `next_cursor` of the previous page as it is"


def digest(*filters: str) -> str:
    """The listing's filters, as the cursor keeps them (16 hex digits)."""
    return hashlib.sha256("\0".join(filters).encode()).hexdigest()[:16]


def pack(payload: str) -> str:
    return base64.urlsafe_b64encode(payload.encode()).rstrip(b"=").decode()


def unpack(text: str, max_chars: int) -> str:
    """The payload of the cursor `text`; a 400 when it is not one."""
    if len(text) > max_chars or not _TEXT.match(text):
        raise not_a_cursor()
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode("ascii")
    except (binascii.Error, ValueError):
        raise not_a_cursor() from None


def not_a_cursor() -> DomainError:
    return invalid("cursor", _NOT_ONE, in_header=True)


def check_listing(given: str, expected: str, filters: str) -> None:
    """A 422 when the cursor's digest is another listing's (`filters`: their names)."""
    if given != expected:
        raise refused(
            "cursor",
            f"was given for another listing: keep {filters} as they were",
            in_header=True,
        )
