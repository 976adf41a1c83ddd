"""Signed tokens: fields that cannot be forged, altered or enumerated without a server secret.

Two forms:
- link tokens (unsubscribe, tracking): `<payload>.<signature>`, both base64url; the payload holds
  the fields joined by NUL, the signature is HMAC-SHA256 over it. Each use signs with a secret of
  its own, so a token made for one is worthless to another.
- short signatures for VERP bounce addresses: HMAC-SHA256 over a purpose and the payload, cut
  and base32-encoded in lower case, because mail servers may change the case of a local part.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

MAX_TOKEN_LENGTH = 4096  # a click token carries its URL


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Signer:
    """Signs and verifies with one secret; the keyed HMAC state is built once and copied per
    token (key set-up is most of the cost of signing a short payload)."""

    __slots__ = ("_mac",)

    def __init__(self, secret: str) -> None:
        self._mac = hmac.new(secret.encode(), digestmod=hashlib.sha256)

    def _signature(self, payload: bytes) -> bytes:
        mac = self._mac.copy()
        mac.update(payload)
        return base64.urlsafe_b64encode(mac.digest()).rstrip(b"=")

    def sign(self, *fields: str) -> str:
        """A token for `fields` (none of which may hold a NUL)."""
        joined = "\0".join(fields)
        if joined.count("\0") != len(fields) - 1:
            raise ValueError("token fields must not contain NUL")
        # Bytes until the end: the payload is signed as encoded, not decoded and re-encoded.
        payload = base64.urlsafe_b64encode(joined.encode()).rstrip(b"=")
        return (payload + b"." + self._signature(payload)).decode("ascii")

    def verify(self, token: str, count: int) -> list[str] | None:
        """The `count` fields of a genuine token; None for anything forged, altered or
        malformed."""
        # Non-ASCII anywhere is no token of ours (and compare_digest raises on non-ASCII str).
        if len(token) > MAX_TOKEN_LENGTH or not token.isascii():
            return None
        payload, dot, signature = token.partition(".")
        if not dot:
            return None
        if not hmac.compare_digest(self._signature(payload.encode("ascii")), signature.encode()):
            return None
        try:
            fields = _unb64(payload).decode("utf-8").split("\0")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            return None
        return fields if len(fields) == count else None


def sign(secret: str, *fields: str) -> str:
    """A token for `fields` signed with `secret`."""
    return Signer(secret).sign(*fields)


def verify(secret: str, token: str, count: int) -> list[str] | None:
    """The `count` fields of a genuine token; None for anything forged, altered or malformed."""
    return Signer(secret).verify(token, count)


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
