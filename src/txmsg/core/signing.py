"""Signed tokens for links in messages: fields that cannot be forged, altered or enumerated.

A token is `<payload>.<signature>`, both base64url: the payload holds the fields joined by NUL,
the signature is HMAC-SHA256 over the payload with a server secret. Each use (unsubscribe,
tracking) signs with a secret of its own, so a token made for one is worthless to another.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

MAX_TOKEN_LENGTH = 4096  # a click token carries its URL


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Signer:
    """Signs and verifies with one secret; the keyed HMAC state is built once and copied per
    token (key set-up is most of the cost of signing a short payload)."""

    __slots__ = ("_mac",)

    def __init__(self, secret: str) -> None:
        self._mac = hmac.new(secret.encode(), digestmod=hashlib.sha256)

    def _signature(self, payload: str) -> str:
        mac = self._mac.copy()
        mac.update(payload.encode("ascii"))
        return _b64(mac.digest())

    def sign(self, *fields: str) -> str:
        """A token for `fields` (none of which may hold a NUL)."""
        if any("\0" in f for f in fields):
            raise ValueError("token fields must not contain NUL")
        payload = _b64("\0".join(fields).encode())
        return f"{payload}.{self._signature(payload)}"

    def verify(self, token: str, count: int) -> list[str] | None:
        """The `count` fields of a genuine token; None for anything forged, altered or
        malformed."""
        payload, dot, signature = token.partition(".")
        if not dot or len(token) > MAX_TOKEN_LENGTH:
            return None
        try:
            payload.encode("ascii")
        except UnicodeEncodeError:
            return None
        if not hmac.compare_digest(self._signature(payload), signature):
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
