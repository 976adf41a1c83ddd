"""Unsubscribe tokens: which profile and message a link is for, signed with a server secret.

A token (core/signing.py) signs the channel, the profile id and the PKey of the message with
the server's unsubscribe secret. Without the secret a token cannot be made, nor changed to name
another profile.
"""

from __future__ import annotations

from dataclasses import dataclass
from email.message import Message
from email.parser import BytesParser
from urllib.parse import parse_qs

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


ONE_CLICK = ("List-Unsubscribe", "One-Click")


def is_one_click(content_type: str, body: bytes) -> bool:
    """Whether a POST's body is RFC 8058's one-click request, `List-Unsubscribe=One-Click`,
    sent urlencoded or, as the RFC's own example does, as `multipart/form-data` (read with the
    standard library's MIME parser: the body is bounded by the request size limit)."""
    media = content_type.split(";", 1)[0].strip().lower()
    if media == "multipart/form-data":
        return _multipart_value(content_type, body, ONE_CLICK[0]) == ONE_CLICK[1]
    fields = parse_qs(body.decode("utf-8", "replace"))
    return fields.get(ONE_CLICK[0]) == [ONE_CLICK[1]]


def _multipart_value(content_type: str, body: bytes, name: str) -> str | None:
    """The value of the form field `name` of a multipart/form-data body (its first, if
    repeated); None when absent or the body is not readable as one."""
    head = f"Content-Type: {' '.join(content_type.split())}\r\n\r\n".encode("latin-1", "replace")
    message = BytesParser().parsebytes(head + body)
    if not message.is_multipart():
        return None
    parts = message.get_payload()
    for part in parts if isinstance(parts, list) else []:
        if (
            isinstance(part, Message)
            and part.get_param("name", header="content-disposition") == name
        ):
            payload = part.get_payload(decode=True)
            if isinstance(payload, bytes):
                return payload.decode("utf-8", "replace").strip()
    return None
