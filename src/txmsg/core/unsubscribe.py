"""Unsubscribe tokens: which profile and message a link is for, signed with a server secret.

A token is `<payload>.<signature>`, both base64url: the payload holds the channel, the
profile id and the PKey of the message; the signature is HMAC-SHA256 over it with the server's
secret. Without the secret a token cannot be made, nor changed to name another profile.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from dataclasses import dataclass

PREFIX = "/unsubscribe/"
SECRET_NAME = "unsubscribe"  # the server secret tokens are signed with (store/secrets.py)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True, slots=True)
class UnsubscribeClaim:
    channel: str
    profile_id: str
    pkey: str


def _signature(secret: str, payload: str) -> str:
    return _b64(hmac.new(secret.encode(), payload.encode("ascii"), hashlib.sha256).digest())


def make_token(secret: str, claim: UnsubscribeClaim) -> str:
    payload = _b64(f"{claim.channel}\0{claim.profile_id}\0{claim.pkey}".encode())
    return f"{payload}.{_signature(secret, payload)}"


def read_token(secret: str, token: str) -> UnsubscribeClaim | None:
    """The claim of a genuine token; None for anything forged, altered or malformed."""
    payload, dot, signature = token.partition(".")
    if not dot or len(token) > 1024:
        return None
    try:
        payload.encode("ascii")
    except UnicodeEncodeError:
        return None
    if not hmac.compare_digest(_signature(secret, payload), signature):
        return None
    try:
        parts = _unb64(payload).decode("utf-8").split("\0")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    if len(parts) != 3:
        return None
    return UnsubscribeClaim(*parts)


def unsubscribe_url(base_url: str, token: str) -> str:
    return base_url.rstrip("/") + PREFIX + token


def list_unsubscribe_headers(url: str) -> tuple[tuple[str, str], ...]:
    """RFC 2369 and RFC 8058 (one-click) headers for a message with an unsubscribe link."""
    return (
        ("List-Unsubscribe", f"<{url}>"),
        ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
    )
