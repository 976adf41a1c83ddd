"""Profile rows: upsert, batch import, erasure, the admin's paged listing, and the per-batch
lookup of the dispatcher."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from itertools import combinations
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from txmsg.core.errors import not_found
from txmsg.core.kinds import Channel
from txmsg.core.profile_import import Held
from txmsg.core.profiles import BY_PERSON, OptOut, Profile, from_row, written_opt_out
from txmsg.core.timeutil import utcnow
from txmsg.store.dialect_insert import insert_into
from txmsg.store.tables import events, fatigue_reservations, message_export, profiles

# Trigger-side reconciliation targets -> profile columns.
LOOKUP_COLUMNS = {
    "profile_id": profiles.c.profile_id,
    "email": profiles.c.email,
    "mobilePhone": profiles.c.mobile_phone,
}
# What each field is matched by: an email whatever the case of its local part, as mailbox
# providers read it (along ix_profiles_email_lower).
MATCHED_BY = {**LOOKUP_COLUMNS, "email": sa.func.lower(profiles.c.email)}


def _sought(field: str, value: str) -> str:
    return value.lower() if field == "email" else value


def _lookup_statement(fields: tuple[str, ...]) -> Any:
    # Expanding parameters: built once, cached compiled (the dispatcher runs it per batch).
    match = [MATCHED_BY[f].in_(sa.bindparam(f"b_{f}", expanding=True)) for f in fields]
    # Created first: by time, then by place in the import that created it.
    first = (profiles.c.created_at.desc(), profiles.c.created_seq.desc())
    return sa.select(profiles).where(sa.or_(*match)).order_by(*first)


_LOOKUPS = {
    fields: _lookup_statement(fields)
    for fields in [tuple(sorted(c)) for n in (1, 2, 3) for c in combinations(LOOKUP_COLUMNS, n)]
}


def _insert(conn: Connection) -> Any:
    return insert_into(conn.dialect.name, profiles)


def get(conn: Connection, profile_id: str) -> Profile | None:
    row = conn.execute(sa.select(profiles).where(profiles.c.profile_id == profile_id)).first()
    return from_row(row) if row is not None else None


def require(conn: Connection, profile_id: str) -> Profile:
    found = get(conn, profile_id)
    if found is None:
        raise not_found(f"no profile '{profile_id}'")
    return found


def page(conn: Connection, limit: int, **bounds: Any) -> list[Profile]:
    """Up to `limit` profiles by `profile_id` (`page_query`)."""
    return [from_row(row) for row in conn.execute(page_query(limit, **bounds))]


def page_query(
    limit: int,
    *,
    email: str | None = None,
    mobile_phone: str | None = None,
    updated_since: datetime | None = None,
    after: str | None = None,
) -> sa.Select[Any]:
    """Up to `limit` profiles by `profile_id`, strictly after `after` (the previous page's last
    id): of `email` (whatever its case, along ix_profiles_email_lower), of `mobile_phone`
    (E.164, along ix_profiles_mobile_phone), written at or after `updated_since`. One query; a
    range of the primary key when no address is given."""
    stmt = sa.select(profiles)
    if email is not None:
        stmt = stmt.where(MATCHED_BY["email"] == _sought("email", email))
    if mobile_phone is not None:
        stmt = stmt.where(profiles.c.mobile_phone == mobile_phone)
    if updated_since is not None:
        stmt = stmt.where(profiles.c.updated_at >= updated_since)
    if after is not None:
        stmt = stmt.where(profiles.c.profile_id > after)
    return stmt.order_by(profiles.c.profile_id).limit(limit)


_OPT_OUTS = (
    ("email_opt_out", profiles.c.email_opt_out, profiles.c.email_opt_out_by),
    ("sms_opt_out", profiles.c.sms_opt_out, profiles.c.sms_opt_out_by),
)


@dataclass(frozen=True, slots=True)
class Written:
    created: int
    updated: int
    # Rows whose explicit `false` left a person's own opt-out in place (written_opt_out).
    opt_outs_kept: int = 0


def upsert_many(
    conn: Connection, batch: list[Profile], resubscribe: bool = False, now: datetime | None = None
) -> Written:
    """Insert or replace profiles. The last of a duplicate wins, but for the opt-outs, which
    each row changes only as `written_opt_out` says (a row without one keeps the stored one).
    `now`: the database's time (`updated_since` lists compare with it, whichever process
    wrote)."""
    if not batch:
        return Written(0, 0)
    latest = {p.profile_id: p for p in batch}
    # The stored opt-outs, locked (PostgreSQL; SQLite's write lock holds them) in key order, as
    # the dispatcher locks profiles: an unsubscribe meanwhile is not lost, nor deadlocked with.
    read = (
        sa.select(profiles.c.profile_id, *(c for _, flag, by in _OPT_OUTS for c in (flag, by)))
        .where(profiles.c.profile_id.in_(sorted(latest)))
        .order_by(profiles.c.profile_id)
    )
    if conn.dialect.name == "postgresql":
        read = read.with_for_update()
    state: dict[tuple[str, str], OptOut] = {}
    existing: set[str] = set()
    for found in conn.execute(read):
        existing.add(found.profile_id)
        for name, flag, by in _OPT_OUTS:
            state[(found.profile_id, name)] = OptOut(bool(found._mapping[flag]), found._mapping[by])
    kept = 0
    for p in batch:  # in order: a duplicate's opt-outs apply one after the other
        for name, _, _ in _OPT_OUTS:
            stored = state.get((p.profile_id, name), OptOut(False, None))
            state[(p.profile_id, name)], refused = written_opt_out(
                stored, getattr(p, name), resubscribe
            )
            kept += refused
    now = now or utcnow()
    rows: list[dict[str, Any]] = []
    # In key order, as the dispatcher locks profiles: an import never deadlocks with it.
    place = {profile_id: n for n, profile_id in enumerate(latest)}  # first seen, file order
    for profile_id, p in sorted(latest.items()):
        row = {**p.as_row(), "created_at": now, "created_seq": place[profile_id], "updated_at": now}
        for name, _, by in _OPT_OUTS:
            opt_out = state[(profile_id, name)]
            row[name] = opt_out.opted_out
            row[by.name] = opt_out.by
        rows.append(row)
    stmt = _insert(conn)
    unchanged = ("profile_id", "created_at", "created_seq")
    replaced = {c: stmt.excluded[c] for c in rows[0] if c not in unchanged}
    conn.execute(stmt.on_conflict_do_update(index_elements=["profile_id"], set_=replaced), rows)
    # A profile given twice in one batch is created once, then updated.
    seen: set[str] = set()
    created = 0
    for p in batch:
        if p.profile_id not in existing and p.profile_id not in seen:
            created += 1
        seen.add(p.profile_id)
    return Written(created, len(batch) - created, kept)


def emails_held(conn: Connection, batch: list[Profile], since: datetime) -> dict[str, Held]:
    """Who else holds the emails of `batch` (lower-cased), for an import begun at `since`.

    Profiles outside the batch: whether one was written before `since` (it existed before the
    import) and whether one was written since (earlier in the import). Profiles of the batch
    that existed before and keep their email: by id. Two queries along ix_profiles_email_lower
    and the primary key.
    """
    new_emails = {p.profile_id: p.email.lower() for p in batch if p.email}
    if not new_emails:
        return {}
    emails, ids = sorted(set(new_emails.values())), [p.profile_id for p in batch]
    email, written = sa.func.lower(profiles.c.email), profiles.c.updated_at
    held: dict[str, Held] = {}
    outside = sa.select(email, sa.func.min(written), sa.func.max(written)).where(
        email.in_(emails), profiles.c.profile_id.not_in(ids)
    )
    for address, oldest, newest in conn.execute(outside.group_by(email)):
        held[address] = Held(oldest < since, newest >= since)
    inside = sa.select(profiles.c.profile_id, email).where(
        profiles.c.profile_id.in_(ids), email.in_(emails), written < since
    )
    for profile_id, address in conn.execute(inside):
        if new_emails.get(profile_id) == address:
            found = held.setdefault(address, Held(False, False))
            held[address] = replace(found, kept_by=found.kept_by | {profile_id})
    return held


def import_batch(
    conn: Connection,
    batch: list[Profile],
    since: datetime,
    resubscribe: bool = False,
    now: datetime | None = None,
) -> tuple[Written, dict[str, Held]]:
    """One transaction of an import begun at `since`: (what was written, emails_held)."""
    held = emails_held(conn, batch, since)
    return upsert_many(conn, batch, resubscribe, now), held


def upsert(
    conn: Connection, profile: Profile, resubscribe: bool = False, now: datetime | None = None
) -> tuple[Profile, bool]:
    """(the stored profile, whether it was created)."""
    written = upsert_many(conn, [profile], resubscribe, now)
    return require(conn, profile.profile_id), written.created == 1


def delete(conn: Connection, profile_id: str) -> None:
    """Erase a profile's personal data: its row, its fatigue history, the export records of its
    messages (recipient, names, content), its link from events."""
    result = conn.execute(sa.delete(profiles).where(profiles.c.profile_id == profile_id))
    if result.rowcount == 0:
        raise not_found(f"no profile '{profile_id}'")
    conn.execute(
        sa.delete(fatigue_reservations).where(fatigue_reservations.c.profile_id == profile_id)
    )
    # By its events' PKeys (the records' message_id), before they are unlinked: both indexed
    # (ix_events_profile, ix_message_export_message_id), where the records' own profile_id is not.
    its_messages = sa.select(events.c.pkey).where(events.c.profile_id == profile_id)
    conn.execute(sa.delete(message_export).where(message_export.c.message_id.in_(its_messages)))
    conn.execute(sa.update(events).where(events.c.profile_id == profile_id).values(profile_id=None))


def opt_out_by_person(
    conn: Connection, profile_id: str, channel: str, now: datetime | None = None
) -> bool:
    """The person opted out of a channel themself (the unsubscribe link, an SMS STOP): only an
    explicit `resubscribe=true` write clears it. False when it was set already (an admin's
    becomes the person's) or the profile no longer exists."""
    column = "email_opt_out" if channel == Channel.EMAIL else "sms_opt_out"
    flag = profiles.c[column]
    by = profiles.c[f"{column}_by"]
    result = conn.execute(
        sa.update(profiles)
        .where(
            profiles.c.profile_id == profile_id,
            sa.or_(flag.is_(False), sa.func.coalesce(by, "") != BY_PERSON),
        )
        .values({column: True, by.name: BY_PERSON, "updated_at": now or utcnow()})
    )
    return result.rowcount > 0


def lookup(conn: Connection, keys: dict[str, set[str]]) -> dict[tuple[str, str], Profile]:
    """Profiles by reconciliation target, one query for a whole batch of events.

    `keys` maps a profile field (`profile_id`, `email`, `mobilePhone`) to the values sought;
    the answer maps (field, value) to a profile. A value matching several profiles matches the
    one created first (profiles are not required to have unique addresses).
    """
    fields = tuple(sorted(field for field, values in keys.items() if values))
    if not fields:
        return {}
    # Each value sought, by what it is matched by (two spellings of one email: one entry).
    sought: dict[str, dict[str, list[str]]] = {field: {} for field in fields}
    for field in fields:
        for value in keys[field]:
            sought[field].setdefault(_sought(field, value), []).append(value)
    params = {f"b_{field}": sorted(sought[field]) for field in fields}
    rows = conn.execute(_LOOKUPS[fields], params).all()
    found: dict[tuple[str, str], Profile] = {}
    for row in rows:  # newest first: the oldest match is written last and wins
        profile = from_row(row)
        for field in fields:
            value = getattr(row, LOOKUP_COLUMNS[field].name)
            for asked in sought[field].get(_sought(field, value), []) if value else []:
                found[(field, asked)] = profile
    return found
