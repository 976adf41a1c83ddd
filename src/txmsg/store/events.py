"""The durable event queue: group-committed inserts, leased claims, batched outcomes."""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from txmsg.core.queue import ClaimedEvent, EnqueueResult, NewEvent, Outcome
from txmsg.core.reports import StatusChange
from txmsg.core.statuses import EventStatus
from txmsg.core.timeutil import utcnow
from txmsg.store import bulk, status_feed
from txmsg.store.bulk import executemany
from txmsg.store.tables import events, idempotency_keys, status_in, waiting

IDEMPOTENCY_WINDOW = timedelta(hours=24)


def _insert(conn: Connection, table: sa.Table) -> Any:
    return (sqlite.insert if conn.dialect.name == "sqlite" else postgresql.insert)(table)


def enqueue_in(
    conn: Connection,
    batch: list[NewEvent],
    *,
    claim: int = 0,
    lease: timedelta | None = None,
) -> tuple[list[EnqueueResult], list[ClaimedEvent]]:
    """Insert many events; resolve Idempotency-Keys against earlier ones.

    For each key the first request to commit is the authority: a later request with the same
    fingerprint replays its response, one with another fingerprint is a mismatch.

    Up to `claim` of the new events that are due now are inserted already leased (for `lease`)
    and returned: the caller hands them to its dispatcher without a claim round trip.

    New events marked `announce` have their acceptance (and their lease: `processing`) queued
    for their status webhook; the others cost nothing more.
    """
    if not batch:  # most write cycles record outcomes only
        return [], []
    now = utcnow()
    token = secrets.token_hex(8)
    lease_until = now + (lease or timedelta(0))
    first_use: dict[str, int] = {}
    for i, item in enumerate(batch):
        if item.idempotency_key is not None:
            first_use.setdefault(item.idempotency_key, i)
    authority: dict[str, tuple[str | None, dict[str, Any]]] = {
        key: (batch[i].fingerprint, batch[i].response) for key, i in first_use.items()
    }
    won: set[str] = set()
    if first_use:
        keys = list(first_use)
        conn.execute(
            sa.delete(idempotency_keys).where(
                idempotency_keys.c.key.in_(keys),
                idempotency_keys.c.created_at < now - IDEMPOTENCY_WINDOW,
            )
        )
        rows = [
            {
                "key": key,
                "fingerprint": batch[i].fingerprint,
                "response": batch[i].response,
                "created_at": now,
            }
            for key, i in first_use.items()
        ]
        inserted = conn.execute(
            _insert(conn, idempotency_keys)
            .values(rows)
            .on_conflict_do_nothing(index_elements=["key"])
            .returning(idempotency_keys.c.key)
        )
        won = set(inserted.scalars())
        lost = [key for key in keys if key not in won]
        if lost:
            earlier = conn.execute(
                sa.select(
                    idempotency_keys.c.key,
                    idempotency_keys.c.fingerprint,
                    idempotency_keys.c.response,
                ).where(idempotency_keys.c.key.in_(lost))
            )
            for row in earlier:
                authority[row.key] = (row.fingerprint, row.response)
    results: list[EnqueueResult] = []
    new_rows: list[dict[str, Any]] = []
    leased: dict[str, NewEvent] = {}
    announced: list[StatusChange] = []
    for i, item in enumerate(batch):
        key = item.idempotency_key
        if key is not None and not (key in won and first_use[key] == i):
            fingerprint, response = authority[key]
            kind = "replay" if fingerprint == item.fingerprint else "mismatch"
            results.append(EnqueueResult(kind, response))
            continue
        results.append(EnqueueResult("created", item.response))
        take = len(leased) < claim and item.status == EventStatus.PENDING and item.due_at <= now
        if take:
            leased[item.pkey] = item
        if item.announce:
            announced.append(StatusChange(item.pkey, item.event_id, item.status.value, now))
            if take:
                processing = EventStatus.PROCESSING.value
                announced.append(StatusChange(item.pkey, item.event_id, processing, now))
        new_rows.append(
            {
                "pkey": item.pkey,
                "event_id": item.event_id,
                "priority": item.priority,
                "status": EventStatus.PROCESSING.value if take else item.status.value,
                "email": item.email,
                "ctx": item.ctx,
                "event_date": item.event_date,
                "scheduled_at": item.scheduled_at,
                "expires_at": item.expires_at,
                "due_at": item.due_at,
                "lease_until": lease_until if take else None,
                "lease_token": token if take else None,
                "attempts": 1 if take else 0,
                "updated_at": now,
                "mobile_phone": item.mobile_phone,
            }
        )
    claimed: list[ClaimedEvent] = []
    executemany(conn, _INSERT, new_rows)
    status_feed.announce_in(conn, announced)
    if leased:
        for row in conn.execute(_LEASED_IDS, {"pkeys": list(leased)}):
            claimed.append(_claimed(row.id, leased[row.pkey], 1, token, lease_until))
        claimed.sort(key=lambda e: e.id)
    return results, claimed


_INSERT = sa.insert(events)
_LEASED_IDS = sa.select(events.c.id, events.c.pkey).where(
    events.c.pkey.in_(sa.bindparam("pkeys", expanding=True))
)


def _claimed(
    row_id: int, src: Any, attempts: int, token: str, lease_until: datetime
) -> ClaimedEvent:
    """From a NewEvent or an events row: both name their fields alike."""
    return ClaimedEvent(
        id=row_id,
        pkey=src.pkey,
        event_id=src.event_id,
        email=src.email,
        ctx=src.ctx,
        event_date=src.event_date,
        scheduled_at=src.scheduled_at,
        expires_at=src.expires_at,
        attempts=attempts,
        lease_token=token,
        lease_until=lease_until,
        mobile_phone=src.mobile_phone,
    )


_CLAIM_COLUMNS = (
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
)


def _claim(dialect: str) -> Any:
    pick = (
        sa.select(events.c.id)
        .where(status_in(EventStatus.PENDING), events.c.due_at <= sa.bindparam("b_now"))
        .order_by(events.c.priority, events.c.due_at, events.c.id)
        .limit(sa.bindparam("b_limit"))
    )
    if dialect != "sqlite":
        pick = pick.with_for_update(skip_locked=True)
    claim = (
        sa.update(events)
        .where(events.c.id.in_(pick.scalar_subquery()))
        .values(
            status=EventStatus.PROCESSING.value,
            lease_until=sa.bindparam("b_until", type_=events.c.lease_until.type),
            lease_token=sa.bindparam("b_token"),
            attempts=events.c.attempts + 1,
            updated_at=sa.bindparam("b_now", type_=events.c.updated_at.type),
        )
    )
    # SQLite: RETURNING would step once a row (see store/bulk.py); the claimed rows are read
    # back by their lease, all in one step, in the same transaction.
    if dialect == "sqlite":
        return claim
    return claim.returning(*_CLAIM_COLUMNS, status_feed.HAS_WEBHOOK)


# Built once: the dispatcher claims many times a second under load.
_CLAIMS = {name: _claim(name) for name in ("sqlite", "postgresql")}
# The lease's end (one value per claim) finds the rows through the lease index; the token
# tells this claim's rows apart.
_CLAIMED_BY_TOKEN = sa.select(*_CLAIM_COLUMNS, status_feed.HAS_WEBHOOK).where(
    status_in(EventStatus.PROCESSING),
    events.c.lease_until == sa.bindparam("b_until", type_=events.c.lease_until.type),
    events.c.lease_token == sa.bindparam("b_token"),
)


def claim_in(
    conn: Connection,
    limit: int,
    lease: timedelta,
    now: datetime | None = None,
) -> list[ClaimedEvent]:
    """Lease up to `limit` due events, highest priority first, in one statement."""
    now = now or utcnow()
    token = secrets.token_hex(8)
    until = now + lease
    params = {"b_now": now, "b_limit": limit, "b_until": until, "b_token": token}
    if conn.dialect.name == "sqlite":
        conn.execute(_CLAIMS["sqlite"], params)
        date = bulk.datetime_reader(conn, events.c.event_date)
        hooked = [
            (
                ClaimedEvent(
                    id=i,
                    pkey=p,
                    event_id=e,
                    email=m,
                    ctx=orjson.loads(c),
                    event_date=date(d),
                    scheduled_at=date(s),
                    expires_at=date(x),
                    attempts=a,
                    lease_token=token,
                    lease_until=until,
                    mobile_phone=ph,
                ),
                bool(h),
            )
            for i, p, e, m, c, d, s, x, a, ph, h in bulk.rows_at_once(
                conn, _CLAIMED_BY_TOKEN, params
            )
        ]
    else:
        rows = conn.execute(_CLAIMS[conn.dialect.name], params).all()
        hooked = [(_claimed(r.id, r, r.attempts, token, until), r.hooked) for r in rows]
    processing = EventStatus.PROCESSING.value
    status_feed.announce_in(
        conn, [StatusChange(c.pkey, c.event_id, processing, now) for c, h in hooked if h]
    )
    return sorted((c for c, _ in hooked), key=lambda e: e.id)


_OUTCOME = (
    sa.update(events)
    .where(events.c.id == sa.bindparam("b_id"), events.c.lease_token == sa.bindparam("b_token"))
    .values(
        status=sa.bindparam("b_status"),
        reason=sa.bindparam("b_reason"),
        due_at=sa.func.coalesce(
            sa.bindparam("b_due_at", type_=events.c.due_at.type), events.c.due_at
        ),
        message_version=sa.bindparam("b_version"),
        sent_at=sa.bindparam("b_sent_at", type_=events.c.sent_at.type),
        provider_message_id=sa.bindparam("b_provider_id"),
        profile_id=sa.bindparam("b_profile_id", type_=events.c.profile_id.type),
        lease_until=None,
        lease_token=None,
        updated_at=sa.bindparam("b_now", type_=events.c.updated_at.type),
    )
)


def record_outcomes_in(conn: Connection, outcomes: list[Outcome]) -> None:
    """Apply many outcomes: one statement per 64 on SQLite, one executemany elsewhere."""
    if not outcomes:
        return
    # One outcome a lease: a repeated one would be counted twice, and an UPDATE ... FROM
    # applies an arbitrary one of them (the first applied before, and still does).
    outcomes = list({(o.id, o.lease_token): o for o in reversed(outcomes)}.values())
    now = utcnow()
    status_feed.outcomes_recorded_in(conn, outcomes, now)  # reports and webhooks
    if conn.dialect.name == "sqlite":
        _record_outcomes_sqlite(conn, outcomes, now)
        return
    params = [
        {
            "b_id": o.id,
            "b_token": o.lease_token,
            "b_status": o.status.value,
            "b_reason": o.reason,
            "b_due_at": o.due_at,
            "b_version": o.message_version,
            "b_sent_at": o.sent_at,
            "b_provider_id": o.provider_message_id,
            "b_profile_id": o.profile_id,
            "b_now": now,
        }
        for o in outcomes
    ]
    executemany(conn, _OUTCOME, params)


# SQLite: the outcomes as a VALUES table joined to the events they update, one statement for
# many rows. An executemany steps once a row, and the driver releases the GIL around each
# step: the writer thread then waits for the busy event loop to hand it back, row after row.
_OUTCOME_COLUMNS = (
    "b_id, b_token, b_status, b_reason, b_due_at, b_version, b_sent_at, b_provider_id, b_profile_id"
)
_OUTCOME_ROW = "(?, ?, ?, ?, ?, ?, ?, ?, ?)"
_OUTCOME_UPDATE = """
UPDATE events SET status = v.b_status, reason = v.b_reason,
  due_at = coalesce(v.b_due_at, events.due_at), message_version = v.b_version,
  sent_at = v.b_sent_at, provider_message_id = v.b_provider_id, profile_id = v.b_profile_id,
  lease_until = NULL, lease_token = NULL, updated_at = ?
FROM v WHERE events.id = v.b_id AND events.lease_token = v.b_token"""
_outcome_sql: dict[int, str] = {}


def _record_outcomes_sqlite(conn: Connection, outcomes: list[Outcome], now: datetime) -> None:
    date = events.c.due_at.type.dialect_impl(conn.dialect).bind_processor(conn.dialect)
    assert date is not None
    for start in range(0, len(outcomes), bulk.MAX_ROWS_PER_STATEMENT):
        chunk = outcomes[start : start + bulk.MAX_ROWS_PER_STATEMENT]
        sql = _outcome_sql.get(len(chunk))
        if sql is None:
            rows = ", ".join([_OUTCOME_ROW] * len(chunk))
            sql = f"WITH v({_OUTCOME_COLUMNS}) AS (VALUES {rows}){_OUTCOME_UPDATE}"
            _outcome_sql[len(chunk)] = sql
        params: list[Any] = []
        for o in chunk:
            params += (
                o.id,
                o.lease_token,
                o.status.value,
                o.reason,
                date(o.due_at),
                o.message_version,
                date(o.sent_at),
                o.provider_message_id,
                o.profile_id,
            )
        params.append(date(now))
        conn.exec_driver_sql(sql, tuple(params))


_RENEW = (
    sa.update(events)
    .where(events.c.id == sa.bindparam("b_id"), events.c.lease_token == sa.bindparam("b_token"))
    .values(lease_until=sa.bindparam("b_until", type_=events.c.lease_until.type))
)


def renew_leases(conn: Connection, leases: list[tuple[int, str]], lease_until: datetime) -> None:
    """Extend the leases (event id, lease token) still held: a slow send keeps its event."""
    if leases:
        rows = [{"b_id": i, "b_token": t, "b_until": lease_until} for i, t in leases]
        executemany(conn, _RENEW, rows)


def release_expired_leases(conn: Connection, now: datetime | None = None) -> int:
    """Events whose worker died mid-send go back to the queue."""
    now = now or utcnow()
    stmt = (
        sa.update(events)
        .where(status_in(EventStatus.PROCESSING), events.c.lease_until < now)
        .values(
            status=EventStatus.PENDING.value, lease_until=None, lease_token=None, updated_at=now
        )
    )
    reason = "claimed again: the lease of the send expired"
    return status_feed.set_status_in(conn, stmt, EventStatus.PENDING.value, now, reason)


def expire_queued(conn: Connection, now: datetime | None = None) -> int:
    """Queued events past their expiration will never be sent: `tooOld`."""
    now = now or utcnow()
    reason = "expired before it could be sent"
    rows = conn.execute(
        sa.update(events)
        .where(
            waiting(EventStatus.PENDING, EventStatus.PAUSED),
            events.c.expires_at < now,
        )
        .values(status=EventStatus.TOO_OLD.value, reason=reason, updated_at=now)
        .returning(events.c.pkey, events.c.event_id, events.c.message_version)
    ).all()
    changes = status_feed.changes_from_rows(rows, EventStatus.TOO_OLD.value, now, reason)
    status_feed.statuses_changed_in(conn, changes)
    return len(rows)


def purge_idempotency_keys(conn: Connection, now: datetime | None = None) -> int:
    now = now or utcnow()
    result = conn.execute(
        sa.delete(idempotency_keys).where(idempotency_keys.c.created_at < now - IDEMPOTENCY_WINDOW)
    )
    return result.rowcount


def get_event(conn: Connection, event_id: str, pkey: str) -> Any | None:
    return conn.execute(
        sa.select(events).where(events.c.pkey == pkey, events.c.event_id == event_id)
    ).first()
