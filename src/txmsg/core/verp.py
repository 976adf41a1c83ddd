"""VERP envelope senders: a per-message bounce address naming the message, signed.

`b-<pkey>-<signature>@<bounce domain>`: the PKey (26 Crockford base32 characters) and an
80-bit HMAC of it, both lower case, so MTAs that lower-case local parts change nothing. The
local part is 45 characters (RFC 5321 allows 64). Bounces and complaints sent back to it name
their message; without the server's secret nobody can make one for another message.
"""

from __future__ import annotations

import re

from txmsg.core.signing import b32_signature, verify_b32

SECRET_NAME = "verp"  # the server secret (store/secrets.py) bounce addresses are signed with
PURPOSE = "verp"
PREFIX = "b-"
# A fixed address of each bounce domain for feedback loops (ARF reports a mailbox provider
# sends to a registered address): its reports are matched through the original message.
FEEDBACK_LOCAL_PART = "fbl"
_LOCAL = re.compile(r"^b-([0-9a-hjkmnp-tv-z]{26})-([a-z2-7]{16})\Z")
_PKEY = re.compile(r"^[0-9A-HJKMNP-TV-Z]{26}\Z")
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_HOSTNAME = re.compile(rf"^(?=.{{1,253}}\Z){_LABEL}(?:\.{_LABEL})+\Z")


def is_hostname(value: str) -> bool:
    """A lower-case DNS name of at least two labels (letters, digits, inner hyphens)."""
    return bool(_HOSTNAME.match(value))


def is_pkey(value: str) -> bool:
    return bool(_PKEY.match(value))


def bounce_address(secret: str, pkey: str, domain: str) -> str:
    """The envelope sender of the message `pkey` for a channel with this bounce domain."""
    local = pkey.lower()
    return f"{PREFIX}{local}-{b32_signature(secret, PURPOSE, pkey.upper())}@{domain}"


def split_address(address: str) -> tuple[str, str]:
    """(local part, domain) lower-cased; ('', '') when it is not an addr-spec."""
    local, at, domain = address.strip().strip("<>").rpartition("@")
    if not at or not local or not domain:
        return "", ""
    return local.lower(), domain.lower().rstrip(".")


def read_bounce_address(secret: str, address: str, domains: frozenset[str]) -> str | None:
    """The PKey a genuine bounce address of one of `domains` names; None otherwise."""
    local, domain = split_address(address)
    if domain not in domains:
        return None
    match = _LOCAL.match(local)
    if match is None:
        return None
    pkey = match.group(1).upper()
    if not verify_b32(secret, PURPOSE, pkey, match.group(2)):
        return None
    return pkey


def is_feedback_address(address: str, domains: frozenset[str]) -> bool:
    local, domain = split_address(address)
    return local == FEEDBACK_LOCAL_PART and domain in domains
