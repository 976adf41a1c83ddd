"""A worker frozen (SIGSTOP) while it holds the scheduler lock and sends under way, on
PostgreSQL: its socket stays open, so its session would hold the lock for as long as the
process lives; the server ends the idle session after the lock's ttl (1 s here), the other
worker takes the lock over, releases the frozen one's expired leases (2 s) and sends them."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

from helpers import live_event, trigger, wait_status
from process_support import all_running, apis_and_workers, body, leased_at_once, pg_value, pkeys_of
from txmsg.testing import FakeSMTPServer

IN_FLIGHT = 4


async def _lock_holder(database_url: str, among: set[int], timeout: float = 5.0) -> int:
    """The PID of the process of `among` whose session holds the scheduler lock (sessions are
    named `txmsg[PID]`), once one does."""
    for _ in range(int(timeout / 0.05)):
        names = await pg_value(
            database_url,
            "SELECT array_agg(a.application_name) FROM pg_locks l"
            " JOIN pg_stat_activity a ON a.pid = l.pid"
            " WHERE l.locktype = 'advisory' AND l.granted AND a.datname = current_database()",
        )
        pids = {int(name.removeprefix("txmsg[").removesuffix("]")) for name in names or []}
        if pids & among:
            return (pids & among).pop()
        await asyncio.sleep(0.05)
    raise AssertionError(f"none of {among} holds the scheduler lock within {timeout}s")


async def test_a_frozen_lock_holder_is_taken_over_and_its_events_sent(
    database_url: str, data_dir: Path, tmp_path: Path, smtp: FakeSMTPServer
) -> None:
    [api], workers = apis_and_workers(
        database_url, data_dir, tmp_path, 1, 2, TXMSG_MAX_IN_FLIGHT=str(IN_FLIGHT)
    )
    frozen: int | None = None
    async with all_running(api, *workers) as [admin, *_]:
        try:
            event_id = await live_event(admin, smtp)
            pids = {w.proc.pid for w in workers if w.proc is not None}
            holder = await _lock_holder(database_url, pids)

            smtp.delay = 1.0  # every worker has sends under way when the holder freezes
            accepted = await asyncio.gather(*(trigger(admin, event_id, body(i)) for i in range(12)))
            await leased_at_once(database_url, 2 * IN_FLIGHT)
            frozen = holder
            os.kill(frozen, signal.SIGSTOP)
            smtp.delay = 0.0

            # While it stays frozen: the other worker takes the lock and sends every event.
            for event in accepted:
                await wait_status(admin, event["href"], "processed", timeout=20)
            await _lock_holder(database_url, pids - {frozen})
            assert {e["PKey"] for e in accepted} <= set(pkeys_of(smtp.messages))
            taken_over = await pg_value(
                database_url,
                "SELECT count(*) FROM events WHERE attempts > 1 AND pkey = ANY($1)",
                [e["PKey"] for e in accepted],
            )
            assert taken_over == IN_FLIGHT, "the frozen worker's leased events, claimed again"
        finally:
            if frozen is not None:
                os.kill(frozen, signal.SIGCONT)  # then stopped gracefully with the others


test_a_frozen_lock_holder_is_taken_over_and_its_events_sent.postgresql_only = True  # type: ignore[attr-defined]
