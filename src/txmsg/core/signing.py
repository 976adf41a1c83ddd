"""HMAC signatures of short tokens, with a server secret and a purpose.

The purpose is part of what is signed, so a signature made for one kind of token (a VERP
bounce address, ...) never validates another kind made with the same secret.
"""

from __future__ import annotations

import base64
import hashlib
import hmac


def signature(secret: str, purpose: str, payload: str, *, size: int = 32) -> bytes:
    """The first `size` bytes of HMAC-SHA256(secret, purpose NUL payload)."""
    message = purpose.encode("utf-8") + b"\0" + payload.encode("utf-8")
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).digest()[:size]


def b32_signature(secret: str, purpose: str, payload: str, *, size: int = 10) -> str:
    """`signature` in lower-case base32 without padding: safe where case may be lost (size
    10 gives 16 characters, 80 bits)."""
    raw = signature(secret, purpose, payload, size=size)
    return base64.b32encode(raw).decode("ascii").rstrip("=").lower()


def verify_b32(secret: str, purpose: str, payload: str, given: str, *, size: int = 10) -> bool:
    """Whether `given` (any case) is `b32_signature` of the payload; constant time."""
    expected = b32_signature(secret, purpose, payload, size=size)
    return hmac.compare_digest(expected, given.lower().encode("ascii", "replace").decode())
