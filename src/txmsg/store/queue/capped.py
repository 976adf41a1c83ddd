"""Claims under channel send-rate caps: tokens from the shared counters, transactional first.

A channel configuration may cap its sends (`rate_limit: {"per_second": N, "per_day": M}`).
The cap holds across every process on the database because its tokens are counted there
(store/rate_windows.py) and taken at claim time, in the claim's transaction:

1. one statement takes, for every capped channel configuration, up to the claim's limit from
   its first window (per second, else per day); a second one takes what that granted from the
   per-day window of those that have both;
2. one claim per capped channel configuration leases at most the tokens it got, highest
   priority first: transactional events take the tokens before any bulk event does;
3. one statement gives back the tokens not spent (fewer events were due);
4. the claim of every other event type, as before, with what is left of the limit.

Events a cap holds stay `pending` (no attempt counted, no lease); the claim says when the
earliest exhausted window ends, so the dispatcher claims again then rather than at its poll.
New events of a capped type are never leased at insert (enqueue's `hold`): they wait for a
claim and its tokens.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from txmsg.core.rate_limit import ChannelCap, Window, parse_channel_cap
from txmsg.core.timeutil import utcnow
from txmsg.store import rate_windows
from txmsg.store.queue import claims
from txmsg.store.queue.claims import Claimed
from txmsg.store.rate_windows import Granted, Take
from txmsg.store.tables import channel_configs, event_configs


@dataclass(frozen=True, slots=True)
class CappedChannel:
    """A capped channel configuration and the event types sent through it."""

    name: str
    cap: ChannelCap
    event_ids: frozenset[str]


@dataclass(frozen=True, slots=True)
class Caps:
    """The installation's channel caps (a snapshot a process keeps for a second or so)."""

    channels: tuple[CappedChannel, ...] = ()
    held: frozenset[str] = field(default=frozenset())  # every capped event type


NO_CAPS = Caps()


def load_caps(conn: Connection) -> Caps:
    """Every capped channel configuration with its event types: one query."""
    rows = conn.execute(
        sa.select(
            channel_configs.c.name, channel_configs.c.settings, event_configs.c.event_id
        ).select_from(
            channel_configs.join(
                event_configs, event_configs.c.channel_config == channel_configs.c.name
            )
        )
    )
    found: dict[str, tuple[ChannelCap, set[str]]] = {}
    for row in rows:
        cap = parse_channel_cap((row.settings or {}).get("rate_limit"))
        if cap is not None:
            found.setdefault(row.name, (cap, set()))[1].add(row.event_id)
    channels = tuple(
        CappedChannel(name, cap, frozenset(ids)) for name, (cap, ids) in sorted(found.items())
    )
    return Caps(channels, frozenset(i for c in channels for i in c.event_ids))


@dataclass(frozen=True, slots=True)
class CappedClaim:
    claimed: Claimed
    # When the earliest exhausted window ends (epoch ms): events it holds may be claimed then.
    held_until_ms: int | None = None


def claim_in(
    conn: Connection,
    caps: Caps,
    limit: int,
    lease: timedelta,
    now: datetime | None = None,
    bulk_limit: int | None = None,
) -> CappedClaim:
    """Lease up to `limit` due events, at most `bulk_limit` bulk ones (None: no bound): the
    capped ones within their tokens, then the others."""
    now = now or utcnow()
    if not caps.channels:
        return CappedClaim(claims.claim_in(conn, limit, lease, now, bulk_limit=bulk_limit))
    now_ms = int(now.timestamp() * 1000)
    tokens = _take(conn, caps, limit, now_ms)
    want = limit
    merged = Claimed()
    returns: list[tuple[str, int, int]] = []
    ends: list[int] = []
    for channel in caps.channels:
        granted = min(t.tokens for t in tokens[channel.name].values())
        got = Claimed()
        if granted > 0 and limit > 0:
            got = claims.claim_in(
                conn,
                min(granted, limit),
                lease,
                now,
                only=channel.event_ids,
                bulk_limit=bulk_limit,
            )
            limit -= len(got.events)
            if bulk_limit is not None:
                bulk_limit -= sum(e.bulk for e in got.events)
        unspent = granted - len(got.events)
        if unspent == 0:  # every token spent: more events may be due, held by a window
            ends += _short_window_end(tokens[channel.name], want, now_ms)
        for window, taken in tokens[channel.name].items():
            # The first window may have granted more than the second one let through.
            returns.append((window.scope, taken.window_start, taken.tokens - granted + unspent))
        merged = Claimed(merged.events + got.events, merged.announced + got.announced)
    rate_windows.give_back_in(conn, returns)
    if limit > 0:
        rest = claims.claim_in(conn, limit, lease, now, exclude=caps.held, bulk_limit=bulk_limit)
        merged = Claimed(merged.events + rest.events, merged.announced + rest.announced)
    merged = replace(merged, events=sorted(merged.events, key=lambda e: e.id))
    return CappedClaim(merged, min(ends) if ends else None)


Tokens = dict[str, dict[Window, Granted]]


def _take(conn: Connection, caps: Caps, want: int, now_ms: int) -> Tokens:
    """Each capped channel's tokens by window: the first windows in one statement, the
    per-day windows behind a per-second one in a second, asking what the first granted."""
    windows = {c.name: c.cap.windows(c.name) for c in caps.channels}
    first = rate_windows.take_in(conn, [Take(w[0], want, now_ms) for w in windows.values()])
    tokens: Tokens = {name: {w[0]: first[w[0].scope]} for name, w in windows.items()}
    second = [
        Take(w[1], first[w[0].scope].tokens, now_ms)
        for w in windows.values()
        if len(w) > 1 and first[w[0].scope].tokens > 0
    ]
    taken = rate_windows.take_in(conn, second)
    for name, w in windows.items():
        if len(w) > 1:
            tokens[name][w[1]] = taken.get(w[1].scope, Granted(0, w[1].start(now_ms)))
    return tokens


def _short_window_end(windows: dict[Window, Granted], want: int, now_ms: int) -> list[int]:
    """The end of the first window that gave fewer tokens than asked (`want` for the first,
    the first's grant for the second), if one did."""
    asked = want
    for window, granted in windows.items():
        if granted.tokens < asked:
            return [window.end(now_ms)]
        asked = granted.tokens
    return []
