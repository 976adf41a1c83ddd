"""Unsubscribe tokens: which profile and message a link is for, signed with a server secret.

A token (core/signing.py) signs the channel, the profile id and the PKey of the message with
the server's unsubscribe secret. Without the secret a token cannot be made, nor changed to name
another profile.
"""

from __future__ import annotations

from dataclasses import dataclass

from txmsg.core.signing import sign, verify

PREFIX = "/unsubscribe/"
SECRET_NAME = "unsubscribe"  # the server secret tokens are signed with (store/secrets.py)


@dataclass(frozen=True, slots=True)
class UnsubscribeClaim:
    channel: str
    profile_id: str
    pkey: str


def make_token(secret: str, claim: UnsubscribeClaim) -> str:
    return sign(secret, claim.channel, claim.profile_id, claim.pkey)


def read_token(secret: str, token: str) -> UnsubscribeClaim | None:
    """The claim of a genuine token; None for anything forged, altered or malformed."""
    fields = verify(secret, token, 3)
    return UnsubscribeClaim(*fields) if fields is not None else None


def unsubscribe_url(base_url: str, token: str) -> str:
    return base_url.rstrip("/") + PREFIX + token


def list_unsubscribe_headers(url: str) -> tuple[tuple[str, str], ...]:
    """RFC 2369 and RFC 8058 (one-click) headers for a message with an unsubscribe link."""
    return (
        ("List-Unsubscribe", f"<{url}>"),
        ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
    )
