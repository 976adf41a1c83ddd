"""Which SMTP refusals are bounces: a hard bounce (the mailbox does not exist) or a soft one."""

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


def classify(reply: str, permanent: bool) -> bool | None:
    """True: a hard bounce; False: a soft one; None: a refusal that is not a bounce."""
    if permanent:
        return True if is_hard_bounce(reply) else None
    return False if is_soft_bounce(reply) else None
