"""Claims under channel send-rate caps: tokens from the shared counters, transactional first.

A channel configuration may cap its sends (`rate_limit: {"per_second": N, "per_day": M}`).
The cap holds across every process on the database because its tokens are counted there
(store/rate_windows.py) and taken at claim time, in the claim's transaction:

1. one statement takes, for every capped channel configuration, up to the claim's limit from
   its first window (per second, else per day); a second one takes what that granted from the
   per-day window of those that have both, and, as far as the claim may lease bulk events,
   from the bulk windows (`bulk_share` % of each window, core/rate_limit.py): bulk sends spend
   tokens of both, transactional ones only of the first, so they keep the rest of the cap;
2. the transactional lane of every event type: one claim statement per capped channel
   configuration, leasing at most the tokens it got, then one for every other event type with
   what is left of the limit;
3. the bulk lane, likewise, with what is left of the limit, the claim's bulk bound and the
   tokens (a capped channel's bulk events at most its bulk tokens): so a transactional event
   of any type goes before a bulk one of any other, and when a cap binds, its bulk events
   wait before its transactional ones do;
4. one statement gives back the tokens not spent (fewer events were due). SQLite reads the
   leased rows back once, by the claim's one lease. A cycle that was only this claim and
   found nothing is rolled back (store/queue/cycle.py): idle workers commit nothing.

Each capped event claimed carries the end of its claim's shortest window (`send_by`): its
token counts in that window, so a send that could not start by then (a process starting:
connections opened, render workers spawned) is handed back rather than made in the next
window beside that window's own claim (engine/legs/base.py, `LegContext.late`).

Every outcome of a capped event that no provider saw returns its claim's tokens with it
(`give_back_unsent_in`, one statement a write cycle, for every outcome of the cycle that has
`Outcome.give_back`: the dispatcher sets it by one rule, a claim that took tokens and an
outcome with no `Outcome.provider_saw`): a send handed back unsent (a stop, a route paused at
send time, its window over, every provider resting, a signing worker that failed), and every
ending reached before a provider (`ignored`: a quarantined or denylisted address, an opted-out
profile, a fatigue rule; `targetingFailed`; `routingFailed`: a render failure, an empty
message; `tooOld` at send time; refused before any relay). A
send a provider saw (sent; refused, a 4xx, a time-out: it may have counted it) keeps them
spent, and its retry takes more; so does an outcome made after an unexpected error (where it
failed is not known).

Events a cap holds stay `pending` (no attempt counted, no lease); the claim says when the
earliest exhausted window ends, so the dispatcher claims again then rather than at its poll.
New events of a capped type are never leased at insert (enqueue's `hold`): they wait for a
claim and its tokens.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from txmsg.core.kinds import Priority
from txmsg.core.queue import PRIORITY_BULK
from txmsg.core.rate_limit import ChannelCap, Window, parse_channel_cap
from txmsg.core.timeutil import utcnow
from txmsg.store import rate_windows
from txmsg.store.queue import claims
from txmsg.store.queue.claims import Claimed
from txmsg.store.queue.rows import HeldRow
from txmsg.store.rate_windows import Granted, Take
from txmsg.store.tables import channel_configs, event_configs


@dataclass(frozen=True, slots=True)
class CappedChannel:
    """A capped channel configuration and the event types sent through it."""

    name: str
    cap: ChannelCap
    event_ids: frozenset[str]
    # Its counters, worked out once per caps snapshot rather than at every claim.
    windows: tuple[Window, ...] = ()
    bulk_windows: tuple[Window, ...] = ()

    @classmethod
    def of(
        cls, name: str, cap: ChannelCap, event_ids: frozenset[str], bulk: bool = True
    ) -> CappedChannel:
        """`bulk`: whether any of its event types is bulk. A channel without one takes no
        bulk tokens (a statement and a give-back saved at each claim); bulk events queued
        before their type turned transactional then go under the whole cap."""
        shares = tuple(cap.bulk_windows(name)) if bulk else ()
        return cls(name, cap, event_ids, tuple(cap.windows(name)), shares)


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
            channel_configs.c.name,
            channel_configs.c.settings,
            event_configs.c.event_id,
            event_configs.c.priority,
        ).select_from(
            channel_configs.join(
                event_configs, event_configs.c.channel_config == channel_configs.c.name
            )
        )
    )
    found: dict[str, tuple[ChannelCap, set[str]]] = {}
    bulk: set[str] = set()  # channel configurations with a bulk event type
    for row in rows:
        cap = parse_channel_cap((row.settings or {}).get("rate_limit"))
        if cap is not None:
            found.setdefault(row.name, (cap, set()))[1].add(row.event_id)
            if row.priority == Priority.BULK:
                bulk.add(row.name)
    channels = tuple(
        CappedChannel.of(name, cap, frozenset(ids), name in bulk)
        for name, (cap, ids) in sorted(found.items())
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
    transactional lane of every event type first (the capped ones within their tokens), then
    the bulk lane with what is left."""
    now = now or utcnow()
    if not caps.channels:
        return CappedClaim(claims.claim_in(conn, limit, lease, now, bulk_limit=bulk_limit))
    now_ms = int(now.timestamp() * 1000)
    tokens = _take(conn, caps, limit, now_ms, bulk_limit)
    claim = claims.Claim(conn, lease, now)
    spent = {
        name: _Spent(min(t.tokens for t in taken.full.values())) for name, taken in tokens.items()
    }
    # The transactional lane: capped event types within their tokens, then every other type.
    left = limit
    for channel in caps.channels:
        used = spent[channel.name]
        used.urgent = claim.take(
            min(used.granted, left), lane="transactional", only=channel.event_ids
        )
        left -= used.urgent
    left -= claim.take(left, lane="transactional", exclude=caps.held)
    # The bulk lane with what is left of the limit, the bound and the tokens.
    bulk_left = left if bulk_limit is None else min(left, bulk_limit)
    for channel in caps.channels:
        used = spent[channel.name]
        room = min(used.granted - used.urgent, bulk_left)
        if channel.bulk_windows:  # at most the bulk windows' tokens
            room = min(room, min(t.tokens for t in tokens[channel.name].bulk.values()))
        used.bulk = claim.take(room, lane="bulk", only=channel.event_ids)
        bulk_left -= used.bulk
    claim.take(bulk_left, lane="bulk", exclude=caps.held)
    claimed = _with_deadlines(caps, claim.done(), now_ms)
    _expired_spend_nothing(caps, claimed, spent, now)
    rate_windows.give_back_in(conn, _unspent(caps, tokens, spent))
    ends = [e for c in caps.channels for e in _held_until(c, tokens, spent, limit, now_ms)]
    return CappedClaim(claimed, min(ends) if ends else None)


def _with_deadlines(caps: Caps, claimed: Claimed, now_ms: int) -> Claimed:
    """Each capped event with the end of its claim's shortest window (`send_by`): its token
    was spent there, so its send may not start after it (engine/legs/base.py)."""
    ends = {c.name: c.windows[0].end(now_ms) for c in caps.channels}
    send_by = {e: ends[c.name] for c in caps.channels for e in c.event_ids}
    events = []
    for event in claimed.events:
        end = send_by.get(event.event_id)
        if end is not None:
            event = replace(event, send_by=datetime.fromtimestamp(end / 1000, UTC))
        events.append(event)
    return Claimed(events, claimed.announced)


def _expired_spend_nothing(
    caps: Caps, claimed: Claimed, spent: dict[str, _Spent], now: datetime
) -> None:
    """Events leased past their expiration end `tooOld` unsent: their tokens go back with the
    unspent ones (else a backlog that expired in the queue would use up a day's cap, and the
    events triggered since would wait for the next day)."""
    channel_of = {e: c.name for c in caps.channels for e in c.event_ids}
    for event in claimed.events:
        name = channel_of.get(event.event_id)
        if name is None or event.expires_at > now:
            continue
        if event.bulk:
            spent[name].bulk -= 1
        else:
            spent[name].urgent -= 1


def give_back_unsent_in(conn: Connection, caps: Caps, rows: Sequence[HeldRow]) -> None:
    """Give back the tokens the claims of these events took: no provider saw their outcomes
    (handed back unsent, or ended before any provider: ignored, routingFailed, tooOld...), in
    the transaction that records them, else a message never sent spends the cap (and one
    handed back spends again at its next claim).

    Only rows whose lease held (`outcomes.record_in` applied their outcome): an outcome
    recorded twice, or after another claim took the event, gives nothing back. Each token
    goes back to the window of its claim (`updated_at`, the claim's time while leased): a
    per-second window long past, or yesterday's, matches no counter and gets nothing. An event
    leased past its expiration spent nothing (`_expired_spend_nothing`): nothing goes back.
    One statement for every window, in the order claims take them (the first windows, then
    the per-day and bulk ones), so a claim running beside it never waits on it crosswise."""
    if not caps.channels or not rows:
        return
    channel_of = {e: c for c in caps.channels for e in c.event_ids}
    counts: dict[tuple[Window, int], int] = {}
    for row in rows:
        channel = channel_of.get(row.event_id)
        if channel is None or row.expires_at <= row.updated_at:
            continue
        at_ms = int(row.updated_at.timestamp() * 1000)
        bulk = channel.bulk_windows if row.priority >= PRIORITY_BULK else ()
        for window in (*channel.windows, *bulk):
            key = (window, window.start(at_ms))
            counts[key] = counts.get(key, 0) + 1
    rank: dict[Window, tuple[int, int, int]] = {}
    for i, channel in enumerate(caps.channels):
        rank[channel.windows[0]] = (0, i, 0)
        for j, window in enumerate((*channel.windows[1:], *channel.bulk_windows)):
            rank[window] = (1, i, j)
    returns = [
        (window.scope, start, count)
        for (window, start), count in sorted(counts.items(), key=lambda kv: rank[kv[0][0]])
    ]
    rate_windows.give_back_in(conn, returns)


@dataclass(slots=True)
class _Spent:
    """A capped channel's tokens in a claim: granted by all its windows, spent by each lane."""

    granted: int
    urgent: int = 0
    bulk: int = 0


def _unspent(
    caps: Caps, tokens: dict[str, _Taken], spent: dict[str, _Spent]
) -> list[tuple[str, int, int]]:
    """The tokens to give back: (scope, window start, count) for every window."""
    returns = []
    for channel in caps.channels:
        taken, used = tokens[channel.name], spent[channel.name]
        for window, held in taken.full.items():
            # The first window may have granted more than the second one let through.
            returns.append((window.scope, held.window_start, held.tokens - used.urgent - used.bulk))
        for window, held in taken.bulk.items():
            returns.append((window.scope, held.window_start, held.tokens - used.bulk))
    return returns


def _held_until(
    channel: CappedChannel,
    tokens: dict[str, _Taken],
    spent: dict[str, _Spent],
    want: int,
    now_ms: int,
) -> list[int]:
    """When the events a channel's windows hold may be claimed, if they may hold some."""
    taken, used = tokens[channel.name], spent[channel.name]
    ends = []
    if used.urgent + used.bulk == used.granted:  # every token spent: more may be due
        ends += _short_window_end(taken.full, want, now_ms)
    bulk_granted = min((t.tokens for t in taken.bulk.values()), default=None)
    if bulk_granted is not None and used.bulk == bulk_granted:
        ends += _exhausted_bulk_end(taken.bulk, taken.bulk_asked, now_ms)
    return ends


@dataclass(slots=True)
class _Taken:
    """One capped channel's tokens by window: the whole cap's, and the bulk share's (each
    bulk window asked `bulk_asked`)."""

    full: dict[Window, Granted]
    bulk: dict[Window, Granted] = field(default_factory=dict)
    bulk_asked: int = 0


def _take(
    conn: Connection, caps: Caps, want: int, now_ms: int, bulk_limit: int | None
) -> dict[str, _Taken]:
    """Each capped channel's tokens: the first windows in one statement; in a second, the
    per-day windows behind a per-second one and the bulk windows, asking what the first
    granted (at most `bulk_limit` of the bulk ones)."""
    first = rate_windows.take_in(conn, [Take(c.windows[0], want, now_ms) for c in caps.channels])
    out = {c.name: _Taken({c.windows[0]: first[c.windows[0].scope]}) for c in caps.channels}
    second: list[Take] = []
    for channel in caps.channels:
        got = first[channel.windows[0].scope].tokens
        if got == 0:
            continue
        if len(channel.windows) > 1:
            second.append(Take(channel.windows[1], got, now_ms))
        # Every bulk window is asked at once; what the tightest leaves unspent goes back.
        asked = got if bulk_limit is None else min(got, bulk_limit)
        if asked > 0:
            out[channel.name].bulk_asked = asked
            second += [Take(w, asked, now_ms) for w in channel.bulk_windows]
    taken = rate_windows.take_in(conn, second)
    for channel in caps.channels:
        for window in (*channel.windows[1:], *channel.bulk_windows):
            held = taken.get(window.scope, Granted(0, window.start(now_ms)))
            if window in channel.bulk_windows:
                out[channel.name].bulk[window] = held
            else:
                out[channel.name].full[window] = held
    return out


def _short_window_end(windows: dict[Window, Granted], want: int, now_ms: int) -> list[int]:
    """The end of the first window that gave fewer tokens than asked (`want` for the first,
    the first's grant for the second), if one did."""
    asked = want
    for window, granted in windows.items():
        if granted.tokens < asked:
            return [window.end(now_ms)]
        asked = granted.tokens
    return []


def _exhausted_bulk_end(windows: dict[Window, Granted], asked: int, now_ms: int) -> list[int]:
    """When bulk sends may go again, once the bulk tokens granted are all spent: the latest
    end of the bulk windows that gave the fewest, if fewer than asked (all are spent)."""
    fewest = min(g.tokens for g in windows.values())
    if fewest >= asked:
        return []
    return [max(w.end(now_ms) for w, g in windows.items() if g.tokens == fewest)]
