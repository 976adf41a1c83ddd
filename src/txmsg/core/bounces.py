"""Which SMTP refusals are bounces: a hard bounce (the mailbox does not exist) or a soft one.

One classification (`classify`) for a send's own refusal and for a DSN received later. By the
enhanced status code (RFC 3463) when there is one: `x.1.0`-`x.1.6`, `x.1.10` (no such
mailbox or address) and `5.2.1` (mailbox disabled) are hard when permanent; `x.2.2` (mailbox
full) is soft; policy refusals (`x.7.x`: blocklists, DMARC, spam filters) and sender-side
failures (`x.1.7`, `x.1.8`: our own address) are no bounce: they say nothing about the
recipient's address, so they do not count towards its quarantine. Otherwise the reply's
wording decides (`is_hard_bounce`, `is_soft_bounce`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# 5xx replies meaning "no such mailbox": basic codes 550/551/553 with a 5.1.x enhanced status
# (bad destination mailbox or address; 5.1.10 recipient not found), or the usual wording when
# no enhanced code is given.
_HARD_STATUS = re.compile(r"^5\d\d\b.*\b5\.1\.(?:[0-6]|10)\b")
_HARD_WORDS = re.compile(
    r"^55[013]\b.*(user unknown|unknown user|no such (user|mailbox|recipient)|"
    r"does not exist|doesn't exist|mailbox unavailable|recipient rejected|invalid recipient|"
    r"address rejected)",
    re.IGNORECASE,
)
# 4xx "mailbox full" / over quota: repeated, they quarantine the address too.
_SOFT = re.compile(r"^4\d\d\b.*(\b4\.2\.2\b|mailbox (is )?full|over quota)", re.IGNORECASE)
_ENHANCED = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
_HARD_DETAILS = {("1", str(d)) for d in (0, 1, 2, 3, 4, 5, 6, 10)} | {("2", "1")}


def is_hard_bounce(reply: str) -> bool:
    """A permanent refusal saying the mailbox does not exist (a reply such as `550 5.1.1 ...`)."""
    return bool(_HARD_STATUS.match(reply) or _HARD_WORDS.match(reply))


def is_soft_bounce(reply: str) -> bool:
    return bool(_SOFT.match(reply))


@dataclass(frozen=True, slots=True)
class Bounce:
    """A send refused in a way that counts against the address (see `classify`)."""

    pkey: str
    event_id: str
    channel: str
    address: str
    hard: bool
    reason: str


def enhanced_status(text: str) -> str | None:
    """The first enhanced status code (`5.1.1`) in a reply or a DSN's Status field."""
    match = _ENHANCED.search(text)
    return match.group(0) if match else None


def classify(reply: str, permanent: bool, status: str | None = None) -> bool | None:
    """True: a hard bounce; False: a soft one; None: a refusal that is not a bounce.

    `status`: the enhanced status code when known apart from the reply (a DSN's Status
    field); else the one in the reply, if any, is used.
    """
    code = status or enhanced_status(reply)
    if code is not None:
        _, subject, detail = code.split(".")
        if subject == "7" or (subject, detail) in {("1", "7"), ("1", "8")}:
            return None  # a policy refusal, or our own address refused
        if (subject, detail) == ("2", "2"):
            return False
        if permanent and (subject, detail) in _HARD_DETAILS:
            return True
    if permanent:
        return True if is_hard_bounce(reply) else None
    return False if is_soft_bounce(reply) else None
