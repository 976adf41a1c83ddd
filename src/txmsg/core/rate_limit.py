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
from dataclasses import dataclass
from typing import Any

from txmsg.core.errors import invalid
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
