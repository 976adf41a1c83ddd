"""The delivery log on both engines: appended in batches, read back per event in order."""

from __future__ import annotations

from datetime import timedelta

from txmsg.core.delivery import Interaction, LogEntry
from txmsg.core.timeutil import utcnow
from txmsg.store import delivery_log
from txmsg.store.db import Database


async def test_entries_round_trip_oldest_first(db: Database) -> None:
    now = utcnow()
    later = LogEntry("PK1", "EVTa", Interaction.DELIVERED, now + timedelta(seconds=2), {"x": 1})
    first = LogEntry("PK1", "EVTa", Interaction.SENT, now)
    other = LogEntry("PK2", "EVTa", Interaction.SENT, now)
    await db.write(delivery_log.append_in, [later, first, other])
    assert await db.read(delivery_log.for_event, "PK1") == [first, later]
    assert await db.read(delivery_log.for_event, "PK3") == []
