"""Watching a channel send-rate cap from the receiving side (the fake SMTP server)."""

from __future__ import annotations

import asyncio
import math
import time

from txmsg.testing import FakeSMTPServer


async def watch_cap(
    smtp: FakeSMTPServer, count: int, per_second: int, start: float, timeout: float = 15.0
) -> list[float]:
    """Until `count` mails arrived (their arrival times, epoch seconds), asserting all along
    that by wall-clock second k after `start`'s second at most per_second x (k + 1) arrived
    (tokens are taken, per second, before the send)."""
    arrived: list[float] = []
    deadline = start + timeout
    while len(arrived) < count and time.time() < deadline:
        now = time.time()
        arrived += [now] * (len(smtp.messages) - len(arrived))
        windows = math.floor(now) - math.floor(start) + 1
        assert len(arrived) <= per_second * windows, (len(arrived), round(now - start, 3))
        await asyncio.sleep(0.01)
    assert len(arrived) == count, f"{len(arrived)} of {count} sent in {timeout} s"
    return arrived
