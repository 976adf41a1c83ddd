"""A per-second cap counts sends in the window their claim took tokens in: a send delayed past
that window (a process starting: its relay connections slow to open) is handed back unsent,
not made in the next window beside that window's own claim.

The probe behind it: workers restarted with a backlog, capped at 20 a second, and the relay
saw 36 sends in one second (each claim's tokens spent at claim time, the first claim's sends
held up by opening connections until the next window's claim sent too)."""

from __future__ import annotations

import asyncio
import math
import time
from collections import Counter
from pathlib import Path

from test_cap_give_back import capped_event, engine, spent_today

from engine_support import api_only, final_row
from helpers import trigger
from txmsg.store.db import Database
from txmsg.testing import FakeSMTPServer

PER_SECOND = 3


async def test_sends_delayed_past_their_window_are_not_made_in_the_next_one(
    db: Database, database_url: str, data_dir: Path
) -> None:
    """6 events queued, 3 a second: the first claim's 3 sends wait 1.1 s for their connections
    (the relay greets late), into the next window, whose claim takes 3 more tokens. Before,
    both claims' 6 sends reached the relay in that second; now the late 3 go back to the
    queue (no attempt counted, their day tokens back) and go in the window after, claimed
    again: never more than 3 in a second, all 6 sent once."""
    async with FakeSMTPServer() as smtp:
        async with api_only(database_url, data_dir) as admin:
            event_id = await capped_event(admin, smtp, {"per_second": PER_SECOND, "per_day": 1000})
            r = await admin.patch("/api/v1/channel-configs/mail", json={"smtp": {"pool_size": 3}})
            assert r.status_code == 200, r.text
            body = {"ctx": {"firstName": "Ada"}}
            queued = [
                (await trigger(admin, event_id, {**body, "email": f"u{i}@example.org"}))["PKey"]
                for i in range(2 * PER_SECOND)
            ]  # no dispatcher here: they wait in the queue, as a backlog does for a restart
        arrived: list[float] = []
        smtp.on_message = lambda _message: arrived.append(time.time())
        smtp.connect_delay = 1.1  # longer than a window: the first claim's sends come late
        await asyncio.sleep(1.02 - time.time() % 1.0)  # start early in a second
        async with engine(database_url, data_dir):
            rows = [await final_row(db, event_id, pkey, timeout=15) for pkey in queued]
        assert [row.status for row in rows] == ["processed"] * len(queued)
        assert len(smtp.messages) == len(queued)  # each sent once
        by_second = Counter(math.floor(t) for t in arrived)
        assert max(by_second.values()) <= PER_SECOND, sorted(by_second.items())
        # The hand-back was no attempt, and gave its day tokens back: one each, as sent.
        assert [row.attempts for row in rows] == [1] * len(queued)
        assert await db.read(spent_today) == len(queued)
