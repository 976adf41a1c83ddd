"""Rate limits as values: a channel configuration's send caps and an API key's token bucket.

Both are counted the same way (store/rate_windows.py): a shared counter per scope and time
window, from which a process takes tokens atomically. A window is `length_ms` long, starts at
a multiple of its length (UTC epoch milliseconds) and holds `cap` tokens.

- A channel cap `{"per_second": N, "per_day": M, "bulk_share": P}`: a 1 s window of N sends
  and a UTC-day window of M sends; a send takes a token from both. Bulk sends also take one
  from a window of their own holding P % of each (90 by default): the rest is kept for
  transactional sends, which may spend the whole cap, so bulk waits first when it binds.
- A key limit `{"per_second": N, "burst": M}`: a bucket of M tokens refilled whole every
  M / N seconds (a window of that length holding M): on average N requests a second, at most
  M at once (2 M across a window boundary).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from txmsg.core.errors import invalid
from txmsg.core.kinds import Priority
from txmsg.core.timeutil import isoformat
from txmsg.core.validation import as_integer, reject_unknown, require_object

MAX_PER_SECOND = 1_000_000
MAX_PER_DAY = 1_000_000_000
MAX_BURST = 1_000_000
# The share (percent) of each channel cap window bulk sends may take; the rest is kept for
# transactional sends so a quota spent by bulk does not hold them.
DEFAULT_BULK_SHARE = 90
SECOND_MS = 1000
DAY_MS = 86_400_000


@dataclass(frozen=True, slots=True)
class Window:
    """One counter: `cap` tokens per window of `length_ms`, for `scope`."""

    scope: str
    length_ms: int
    cap: int

    def start(self, now_ms: int) -> int:
        """The start of the window holding `now_ms` (epoch milliseconds)."""
        return now_ms - now_ms % self.length_ms

    def end(self, now_ms: int) -> int:
        return self.start(now_ms) + self.length_ms


def channel_scopes(channel_config: str) -> tuple[str, ...]:
    """Every counter a channel configuration's cap may have used (`ChannelCap.windows` and
    `bulk_windows`): what goes with the configuration when it is deleted."""
    base = (f"channel:{channel_config}:second", f"channel:{channel_config}:day")
    return (*base, *(f"{scope}:bulk" for scope in base))


@dataclass(frozen=True, slots=True)
class ChannelCap:
    """A channel configuration's send-rate cap; either bound may be absent."""

    per_second: int | None = None
    per_day: int | None = None
    bulk_share: int = DEFAULT_BULK_SHARE  # percent of each window bulk sends may take

    def windows(self, channel_config: str) -> list[Window]:
        """Its counters, the per-second one first (tokens are taken in this order)."""
        out = []
        if self.per_second is not None:
            out.append(Window(f"channel:{channel_config}:second", SECOND_MS, self.per_second))
        if self.per_day is not None:
            out.append(Window(f"channel:{channel_config}:day", DAY_MS, self.per_day))
        return out

    def bulk_windows(self, channel_config: str) -> list[Window]:
        """Bulk sends' own counters, in the order of `windows`: `bulk_share` % of each (at
        least one send a window); none for a window where that keeps nothing back."""
        out = []
        for window in self.windows(channel_config):
            share = max(1, window.cap * self.bulk_share // 100)
            if share < window.cap:
                out.append(Window(f"{window.scope}:bulk", window.length_ms, share))
        return out

    def as_dict(self) -> dict[str, int]:
        out = {}
        if self.per_second is not None:
            out["per_second"] = self.per_second
        if self.per_day is not None:
            out["per_day"] = self.per_day
        out["bulk_share"] = self.bulk_share
        return out


@dataclass(frozen=True, slots=True)
class WindowUse:
    """A channel cap window as its shared counter stands: sends counted in the current window
    (`second` or `day`) of `limit`, and of the bulk share's `bulk_limit` (None: no share kept
    back in this window)."""

    window: str
    limit: int
    used: int
    resets_at_ms: int
    bulk_limit: int | None = None
    bulk_used: int = 0

    @property
    def resets_at(self) -> datetime:
        return datetime.fromtimestamp(self.resets_at_ms / 1000, UTC)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "used": self.used,
            "limit": self.limit,
            "resets_at": isoformat(self.resets_at),
        }
        if self.bulk_limit is not None:
            out["bulk"] = {"used": self.bulk_used, "limit": self.bulk_limit}
        return out


# (window start, tokens used) of each counter read, by scope (store/rate_windows.py).
Counters = Mapping[str, tuple[int, int]]


def _counted(counters: Counters, window: Window, now_ms: int) -> tuple[int, int]:
    """(tokens used, end) of `window`'s current window. A counter of an earlier window holds
    none of this one's; one of a later window (a process whose clock was ahead took it)
    counts for it, as a take would (store/rate_windows.py)."""
    start = window.start(now_ms)
    stored_start, used = counters.get(window.scope, (start, 0))
    if stored_start < start:
        return 0, start + window.length_ms
    return used, stored_start + window.length_ms


def cap_use(
    cap: ChannelCap, channel_config: str, counters: Counters, now_ms: int
) -> list[WindowUse]:
    """How much of each of the cap's windows is spent now (per second first), read from the
    counters the claims take their tokens from: nothing counted apart for display."""
    shares = {w.scope.removesuffix(":bulk"): w for w in cap.bulk_windows(channel_config)}
    uses = []
    for window in cap.windows(channel_config):
        used, end = _counted(counters, window, now_ms)
        share = shares.get(window.scope)
        bulk_used = _counted(counters, share, now_ms)[0] if share is not None else 0
        name = window.scope.rsplit(":", 1)[1]
        cap_of_share = share.cap if share is not None else None
        uses.append(WindowUse(name, window.cap, used, end, cap_of_share, bulk_used))
    return uses


def usage_view(uses: list[WindowUse]) -> dict[str, Any]:
    """The API's `rate_limit_usage`: each window's use by its name."""
    return {use.window: use.as_dict() for use in uses}


_CAP_NAMES = {"second": "per-second", "day": "daily"}


def held_reason(
    channel_config: str, cap: ChannelCap, uses: list[WindowUse], bulk: bool
) -> str | None:
    """Why a due event of this channel configuration waits, when a window of its cap is
    spent (for a bulk event, its bulk share too): the one whose end it waits for (the
    latest), in a sentence; None when every window has room."""
    held: list[tuple[int, str]] = []
    for use in uses:
        per = f"per {use.window}"
        what = f"the {_CAP_NAMES.get(use.window, per)} cap of channel configuration"
        what += f" '{channel_config}'"
        if use.used >= use.limit:
            held.append((use.resets_at_ms, f"{what} ({use.limit} {per})"))
        elif bulk and use.bulk_limit is not None and use.bulk_used >= use.bulk_limit:
            share = f"bulk_share {cap.bulk_share} %: {use.bulk_limit} of its {use.limit} {per}"
            held.append((use.resets_at_ms, f"the bulk share of {what} ({share})"))
    if not held:
        return None
    ends_ms, what = max(held)
    resets = isoformat(datetime.fromtimestamp(ends_ms / 1000, UTC))
    return f"waiting for {what}, which resets at {resets}"


def held_now(
    channel_config: str, cap: ChannelCap, counters: Counters, now: datetime, bulk: bool
) -> str | None:
    """`held_reason` for a due event of `channel_config` now, from the cap's counters as read
    (`cap_use`): what an event's status and the latest-events list say of a spent cap."""
    uses = cap_use(cap, channel_config, counters, int(now.timestamp() * 1000))
    return held_reason(channel_config, cap, uses, bulk=bulk)


def held_lanes(uses: list[WindowUse]) -> frozenset[Priority]:
    """The lanes whose due events a cap in this state holds: both when a window is spent,
    bulk alone when only a bulk share is."""
    if any(use.used >= use.limit for use in uses):
        return frozenset(Priority)
    if any(u.bulk_limit is not None and u.bulk_used >= u.bulk_limit for u in uses):
        return frozenset({Priority.BULK})
    return frozenset()


@dataclass(frozen=True, slots=True)
class KeyLimit:
    """An API key's token bucket: `per_second` on average, `burst` at once."""

    per_second: int
    burst: int

    def window(self, scope: str) -> Window:
        return Window(
            scope, max(1, math.ceil(self.burst * SECOND_MS / self.per_second)), self.burst
        )

    def as_dict(self) -> dict[str, int]:
        return {"per_second": self.per_second, "burst": self.burst}

    def policy(self) -> str:
        """The IETF draft's `RateLimit-Policy` item for this bucket."""
        window = self.window("")
        return f'"bucket";q={self.burst};w={max(1, math.ceil(window.length_ms / SECOND_MS))}'


def _bounded_int(body: dict[str, Any], key: str, prefix: str, limit: int) -> int | None:
    """`body[key]`, None when left out (a null is no integer: the spec's fields are not
    nullable, and a cap must not vanish by one)."""
    if key not in body:
        return None
    value = as_integer(body[key])
    if value is None or not 1 <= value <= limit:
        raise invalid(prefix + key, f"must be an integer from 1 to {limit}")
    return value


def parse_channel_cap(value: Any, name: str = "rate_limit") -> ChannelCap | None:
    """A channel configuration's `rate_limit`; None (or {}) for no cap."""
    if value is None:
        return None
    body = require_object(value, name)
    reject_unknown(body, {"per_second", "per_day", "bulk_share"}, prefix=f"{name}.")
    share = as_integer(body["bulk_share"]) if "bulk_share" in body else None
    if "bulk_share" in body and (share is None or not 1 <= share <= 100):
        raise invalid(f"{name}.bulk_share", "must be an integer percentage from 1 to 100")
    cap = ChannelCap(
        _bounded_int(body, "per_second", f"{name}.", MAX_PER_SECOND),
        _bounded_int(body, "per_day", f"{name}.", MAX_PER_DAY),
        DEFAULT_BULK_SHARE if share is None else share,
    )
    if cap.per_second is None and cap.per_day is None:
        if share is not None:
            raise invalid(f"{name}.bulk_share", "needs a per_second or per_day cap to share")
        return None
    return cap


def parse_key_limit(value: Any, name: str = "rate_limit") -> KeyLimit | None:
    """An API key's `rate_limit`: `per_second` required, `burst` defaults to it."""
    if value is None:
        return None
    body = require_object(value, name)
    reject_unknown(body, {"per_second", "burst"}, prefix=f"{name}.")
    per_second = _bounded_int(body, "per_second", f"{name}.", MAX_PER_SECOND)
    if per_second is None:
        raise invalid(f"{name}.per_second", "is required")
    burst = _bounded_int(body, "burst", f"{name}.", MAX_BURST)
    return KeyLimit(per_second, burst if burst is not None else per_second)


_SPEC = re.compile(r"^\s*(\d{1,7})\s*/\s*s\s*(?:(?:,|\s)\s*burst\s*=?\s*(\d{1,7}))?\s*\Z")


def parse_limit_spec(text: str, name: str) -> KeyLimit | None:
    """`100/s`, `100/s burst 200` or `100/s,burst=200` (environment settings); `off`: none."""
    if text.strip().lower() in ("", "off", "none"):
        return None
    match = _SPEC.match(text.lower())
    if match is None:
        raise ValueError(f"{name} must look like '100/s' or '100/s burst 200', or be 'off'")
    per_second = int(match.group(1))
    burst = int(match.group(2)) if match.group(2) else per_second
    if not 1 <= per_second <= MAX_PER_SECOND or not 1 <= burst <= MAX_BURST:
        raise ValueError(f"{name}: rate and burst must be from 1 to {MAX_PER_SECOND}")
    return KeyLimit(per_second, burst)
