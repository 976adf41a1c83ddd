"""The rows the queue's statements return, as typed objects: the one place they are read.

Each row type sits beside the columns of the statements that return it, in the same order,
and is built from any sequence of those values (a SQLAlchemy row, or the one-step read's
tuples): no reads by position anywhere else.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta
from typing import Any, NamedTuple

import sqlalchemy as sa

from txmsg.core.queue import ClaimedEvent, NewEvent
from txmsg.core.statuses import EventStatus
from txmsg.store.tables import events, status_in
from txmsg.store.webhook_outbox import HAS_WEBHOOK


class Lease(NamedTuple):
    """A claim's hold on its events: the token tells this claim's rows apart, until it ends."""

    token: str
    until: datetime

    @classmethod
    def new(cls, now: datetime, duration: timedelta) -> Lease:
        return cls(secrets.token_hex(8), now + duration)

    def params(self) -> dict[str, Any]:
        """The parameters of `HELD_BY_LEASE` for this lease."""
        return {"b_until": self.until, "b_token": self.token}


# The rows one lease holds. Its end (one value per claim or insert) finds them through the
# lease index; its token tells them apart from another lease's ending at the same time.
HELD_BY_LEASE = sa.and_(
    status_in(EventStatus.PROCESSING),
    events.c.lease_until == sa.bindparam("b_until", type_=events.c.lease_until.type),
    events.c.lease_token == sa.bindparam("b_token"),
)


# A claimed event: what the dispatcher needs of it, and whether its event has a webhook.
CLAIM_COLUMNS: tuple[sa.ColumnElement[Any], ...] = (
    events.c.id,
    events.c.pkey,
    events.c.event_id,
    events.c.email,
    events.c.ctx,
    events.c.event_date,
    events.c.scheduled_at,
    events.c.expires_at,
    events.c.attempts,
    events.c.mobile_phone,
    HAS_WEBHOOK,
    events.c.priority,
    events.c.reason,
)


class ClaimRow(NamedTuple):
    id: int
    pkey: str
    event_id: str
    email: str | None
    ctx: dict[str, Any]
    event_date: datetime
    scheduled_at: datetime | None
    expires_at: datetime
    attempts: int
    mobile_phone: str | None
    hooked: bool
    priority: int
    reason: str | None

    @classmethod
    def inserted(cls, row_id: int, item: NewEvent) -> ClaimRow:
        """A new event inserted leased (its first attempt): the row as the insert wrote it."""
        return cls(
            row_id,
            item.pkey,
            item.event_id,
            item.email,
            item.ctx,
            item.event_date,
            item.scheduled_at,
            item.expires_at,
            1,
            item.mobile_phone,
            item.announce,
            item.priority,
            None,
        )

    def claimed(self, lease: Lease) -> ClaimedEvent:
        """The one place a ClaimedEvent is made."""
        return ClaimedEvent(
            id=self.id,
            pkey=self.pkey,
            event_id=self.event_id,
            email=self.email,
            ctx=self.ctx,
            event_date=self.event_date,
            scheduled_at=self.scheduled_at,
            expires_at=self.expires_at,
            attempts=self.attempts,
            lease_token=lease.token,
            lease_until=lease.until,
            mobile_phone=self.mobile_phone,
            priority=self.priority,
            reason=self.reason,
        )


# An event an outcome names, as it is now: whether the outcome's lease still holds, and
# what a give-back of its cap tokens needs (its lane, expiration and claim time).
HELD_COLUMNS: tuple[sa.ColumnElement[Any], ...] = (
    events.c.id,
    events.c.pkey,
    events.c.event_id,
    events.c.lease_token,
    HAS_WEBHOOK,
    events.c.priority,
    events.c.expires_at,
    events.c.updated_at,
)


class HeldRow(NamedTuple):
    id: int
    pkey: str
    event_id: str
    lease_token: str | None
    hooked: bool
    priority: int
    expires_at: datetime
    # While its lease holds: the claim's time (the claim sets it; renewals leave it), so the
    # claim's rate windows.
    updated_at: datetime


# An event whose status an UPDATE changed (its RETURNING clause).
CHANGED_COLUMNS: tuple[sa.ColumnElement[Any], ...] = (
    events.c.pkey,
    events.c.event_id,
    events.c.message_version,
    HAS_WEBHOOK,
    events.c.reason,
)


class ChangedRow(NamedTuple):
    pkey: str
    event_id: str
    message_version: int | None
    hooked: bool
    reason: str | None  # as the UPDATE left it


# A new event inserted leased, found again by its lease.
LEASED_COLUMNS: tuple[sa.ColumnElement[Any], ...] = (events.c.id, events.c.pkey)


class LeasedRow(NamedTuple):
    id: int
    pkey: str


def _same_names(columns: tuple[sa.ColumnElement[Any], ...], row: type[tuple[Any, ...]]) -> None:
    names = tuple(c.key for c in columns)
    fields: tuple[str, ...] = getattr(row, "_fields", ())
    if names != fields:
        raise TypeError(f"{row.__name__} has fields {fields}, its statements return {names}")


for _columns, _row in (
    (CLAIM_COLUMNS, ClaimRow),
    (HELD_COLUMNS, HeldRow),
    (CHANGED_COLUMNS, ChangedRow),
    (LEASED_COLUMNS, LeasedRow),
):
    _same_names(_columns, _row)
