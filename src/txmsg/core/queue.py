"""Value types of the durable queue, shared by the store, the API and the dispatcher."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from txmsg.core.bounces import Bounce
from txmsg.core.delivery import ProviderOptOut
from txmsg.core.export_record import ExportRecord
from txmsg.core.kinds import Priority
from txmsg.core.statuses import EventStatus
from txmsg.core.timeutil import isoformat

# A lane's rank in the queue (`events.priority`): claims order by it, lowest first.
PRIORITY_TRANSACTIONAL = 0
PRIORITY_BULK = 10
_RANKS = {Priority.TRANSACTIONAL: PRIORITY_TRANSACTIONAL, Priority.BULK: PRIORITY_BULK}


def priority_rank(lane: Priority) -> int:
    """The queue's rank of an event configuration's lane."""
    return _RANKS[lane]


def priority_lane(rank: int) -> Priority:
    """The lane of a queued event's rank."""
    return Priority.BULK if rank >= PRIORITY_BULK else Priority.TRANSACTIONAL


_RANDOM_BATCH = 16 * 512
_random = bytearray()


def _random_bytes(n: int) -> bytes:
    # One getrandom() call per 512 keys instead of one per key (a syscall each).
    global _random
    if len(_random) < n:
        _random = bytearray(os.urandom(_RANDOM_BATCH))
    out = bytes(_random[-n:])
    del _random[-n:]
    return out


def _forget_random() -> None:
    _random.clear()


os.register_at_fork(after_in_child=_forget_random)  # a forked worker never reuses bytes

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
# Two base32 digits per 10 bits, for a key's time.
_PAIRS = [a + b for a in _CROCKFORD for b in _CROCKFORD]
# A random byte's digit: its low 5 bits (256 is a multiple of 32: every digit equally likely).
_DIGIT_OF_BYTE = bytes(ord(_CROCKFORD[b & 31]) for b in range(256))
_time_digits: tuple[int, str] = (-1, "")  # the last millisecond a key was made in, its digits


def _millisecond_digits(ms: int) -> str:
    """10 digits: the 48-bit millisecond then 2 zero bits (one value, so threads may race)."""
    global _time_digits
    last, digits = _time_digits
    if last != ms:
        value = ms << 2
        digits = "".join([_PAIRS[(value >> shift) & 1023] for shift in (40, 30, 20, 10, 0)])
        _time_digits = (ms, digits)
    return digits


def new_pkey() -> str:
    """26 Crockford base32 digits: 10 of the millisecond (48 bits), 16 random (80 bits).

    Time-ordered keys keep index inserts at the right edge of the B-tree. The random digits are
    random bytes translated in one C call, and a millisecond's digits are made once: a batch
    trigger makes up to 1,000 keys in a few milliseconds (1.3 us a key, against 3.7 us when
    every key encoded 130 bits two digits at a time).
    """
    ms = time.time_ns() // 1_000_000
    return _millisecond_digits(ms) + _random_bytes(16).translate(_DIGIT_OF_BYTE).decode()


# Not frozen: a trigger makes one per event, and a frozen dataclass's __init__ sets each of
# its 16 fields through object.__setattr__ (3.7 us against 0.9 us). Nothing changes one after.
@dataclass(slots=True)
class NewEvent:
    pkey: str
    event_id: str
    priority: int
    status: EventStatus
    email: str | None
    ctx: dict[str, Any]
    event_date: datetime
    scheduled_at: datetime | None
    expires_at: datetime
    due_at: datetime
    # The answer given for it (kept for Idempotency-Key replays).
    response: dict[str, Any]
    idempotency_key: str | None = None
    fingerprint: str | None = None
    mobile_phone: str | None = None  # E.164, for SMS events
    # Its event configuration names a status webhook (as the trigger's cached facts say):
    # the acceptance is announced. False costs the enqueue nothing.
    announce: bool = False


@dataclass(frozen=True, slots=True)
class NewBatch:
    """The events of one batch trigger: written in one transaction, under one Idempotency-Key.

    The key (if any) covers the batch as a whole: its events carry none of their own.
    """

    events: tuple[NewEvent, ...]
    # The batch's answer (kept for Idempotency-Key replays).
    response: dict[str, Any]
    idempotency_key: str | None = None
    fingerprint: str | None = None


def events_of(item: NewEvent | NewBatch) -> tuple[NewEvent, ...]:
    """The events an enqueued item holds: itself, or a batch's."""
    return item.events if isinstance(item, NewBatch) else (item,)


@dataclass(frozen=True, slots=True)
class EnqueueResult:
    """`created` (new event), `replay` (same key and body) or `mismatch` (same key, other body)."""

    kind: str
    response: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ClaimedEvent:
    id: int
    pkey: str
    event_id: str
    email: str | None
    ctx: dict[str, Any]
    event_date: datetime
    scheduled_at: datetime | None
    expires_at: datetime
    attempts: int
    lease_token: str
    lease_until: datetime
    mobile_phone: str | None = None
    priority: int = PRIORITY_TRANSACTIONAL  # its lane's rank (`priority_lane`)
    reason: str | None = None  # as claimed: after a retry, "retrying: <the error>"
    # A capped channel's event: when its claim's shortest rate window ends (the database's
    # clock). A send that would start later is handed back (`SENT_LATE`): its token was
    # spent in that window, and the next window's claim sends its own. None: uncapped.
    send_by: datetime | None = None

    @property
    def bulk(self) -> bool:
        return self.priority >= PRIORITY_BULK


RETRYING = "retrying: "  # the reason of an event waiting for its next attempt, then the error
EXPIRED_UNSENT = "expired before it could be sent"
EXPIRED_RETRYING = "expired while retrying: "  # then the last error


def held_only_by_a_cap(row: Any, now: datetime) -> bool:
    """Whether a spent cap is what an event (a row of `events`) waits for, if one is: a
    pending event already due and not yet expired (one past its expiration ends `tooOld`
    whatever the cap)."""
    return bool(row.status == EventStatus.PENDING and row.due_at <= now < row.expires_at)


def expired_unsent(row: Any, now: datetime) -> bool:
    """A pending event (a row of `events`) whose expiration passed: its claim ends it."""
    return bool(row.status == EventStatus.PENDING and row.expires_at <= now)


def expired_waiting(expires_at: datetime, reason: str | None) -> str:
    """What a pending event past its expiration says (its status, the latest-events list)
    until a claim ends it `tooOld`, with the reason it will end with (`expired_reason`: after
    retries, their last error): no cap or backlog it might wait for sends it any more."""
    passed = f"its expiration, {isoformat(expires_at)}, passed"
    return f"{expired_reason(reason)} ({passed}): it ends tooOld"


# The reason of an event handed back unsent because its claim's rate window ended before its
# send could start; claimed again with it, the event is sent however late (at most one
# hand-back in a row).
SENT_LATE = "handed back unsent: its channel cap's window ended before it could be sent"


def retrying_reason(error: str) -> str:
    return RETRYING + error


def expired_reason(last: str | None) -> str:
    """Why an event ended `tooOld`: with the last error it was retried for, if it was."""
    if last is not None and last.startswith(RETRYING):
        return EXPIRED_RETRYING + last[len(RETRYING) :]
    return EXPIRED_UNSENT


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of a claimed event; applied only while its lease is still ours."""

    id: int
    lease_token: str
    status: EventStatus
    reason: str | None = None
    due_at: datetime | None = None  # for retries (status pending)
    message_version: int | None = None
    sent_at: datetime | None = None
    # The provider's id of the sent message (Twilio's SM... SID): receipts find the event by it.
    provider_message_id: str | None = None
    # The message export record, written with the status (sent, and export on at send time).
    export: ExportRecord | None = None
    profile_id: str | None = None  # the profile a profile-based event was reconciled with
    # A refusal that counts as a bounce: recorded (quarantine, delivery log) with the outcome.
    bounce: Bounce | None = None
    # A refusal because the recipient opted out at the provider (an SMS STOP): recorded as
    # their opt-out (the address held, `unsubscribed` logged, the profile opted out).
    opt_out: ProviderOptOut | None = None
    # The provider's acceptance is the delivery (an SMTP 250): counted `delivered` with the
    # send. SMS is delivered when Twilio's receipt says so.
    delivered: bool = False
    # Which of the configuration's providers sent it (an SMTP relay's host:port), when the
    # configuration has fallbacks to choose from.
    provider: str | None = None
    # The tokens its claim took of the channel's cap go back with the outcome. Set by the
    # dispatcher alone, by one rule: a capped event's outcome that no provider saw
    # (`provider_saw`), whatever its status (engine/dispatcher.py, `_process`).
    give_back: bool = False
    # False: no attempt was made (handed back before the send started, `SENT_LATE`): the
    # attempt its claim counted is taken back with the outcome.
    attempted: bool = True
    # An attempt that ended unsent went out to a provider (a 4xx, a time-out, a refusal): the
    # event records it (`events.attempted_at`), and a bounce or complaint about the message is
    # legitimate from then on. A sent one (`sent_at`) reached its provider too.
    reached_provider: bool = False

    @property
    def provider_saw(self) -> bool:
        """Whether a provider saw this attempt: it sent it (`sent_at`), or the attempt went
        out to one (`reached_provider`: a refusal, a 4xx, a time-out mid-transaction), which
        may have counted it against its quota. Every other ending (ignored, targetingFailed,
        routingFailed, tooOld or paused at send time, handed back unsent, retried with every
        provider resting, refused before any relay) was reached before any provider."""
        return self.sent_at is not None or self.reached_provider
