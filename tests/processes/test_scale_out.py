"""Scale-out on PostgreSQL: two `txmsg serve --role api` and two `txmsg worker` processes on
one database. Triggers spread over both APIs are each sent once, none is lost, a fatigue
rule holds across them; a worker killed (SIGKILL) mid-send leaves its events to the other,
which sends them once their leases end (2 s here)."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path
from typing import Any

from helpers import live_event, trigger, wait_status, wait_until
from process_support import (
    Txmsg,
    all_running,
    apis_and_workers,
    body,
    leased_at_once,
    pg_value,
    pkeys_of,
    sent_once_each,
)
from profile_helpers import profile_event, put_profile
from txmsg.testing import FakeSMTPServer

IN_FLIGHT = "4"  # a worker's leased events at a time: what a SIGKILL can leave sent twice


def _processes(database_url: str, data_dir: Path, tmp_path: Path) -> list[Txmsg]:
    apis, workers = apis_and_workers(
        database_url, data_dir, tmp_path, 2, 2, TXMSG_MAX_IN_FLIGHT=IN_FLIGHT
    )
    return apis + workers


async def _all_final(apis: list[Any], accepted: list[dict[str, Any]]) -> list[str]:
    done = await asyncio.gather(
        *(
            wait_status(apis[i % 2], a["href"], {"processed", "ignored"}, timeout=30)
            for i, a in enumerate(accepted)
        )
    )
    return [d["status"] for d in done]


async def test_two_apis_and_two_workers_on_one_postgresql(
    database_url: str, data_dir: Path, tmp_path: Path, smtp: FakeSMTPServer
) -> None:
    processes = _processes(database_url, data_dir, tmp_path)
    async with all_running(*processes) as clients:
        apis = clients[:2]
        plain = await live_event(apis[0], smtp)
        profiled = await profile_event(
            apis[0], smtp, reconciliation={"from": "ctx.id", "to": "profile_id"}, channel=False
        )
        await put_profile(apis[0], "busy", email="busy@example.org", first_name="B")
        r = await apis[1].post(
            "/api/v1/fatigue-rules",
            json={"name": "daily", "channel": "email", "max_messages": 3, "period": "P1D"},
        )
        assert r.status_code == 201, r.text

        # Triggers spread over both APIs, at once.
        accepted = await asyncio.gather(
            *(trigger(apis[i % 2], plain, body(i)) for i in range(40)),
            *(trigger(apis[i % 2], profiled, {"ctx": {"id": "busy"}}) for i in range(12)),
        )
        statuses = await _all_final(apis, list(accepted))
        assert statuses[:40] == ["processed"] * 40, statuses
        assert Counter(statuses[40:]) == {"processed": 3, "ignored": 9}, "fatigue overrun"
        await sent_once_each(smtp, 43)

        # One worker killed mid-send: the other sends its events after their leases end.
        smtp.delay = 0.1
        before = len(smtp.messages)
        more = await asyncio.gather(*(trigger(apis[i % 2], plain, body(i)) for i in range(20)))
        await wait_until(lambda: len(smtp.messages) >= before + 3, what="sends under way")
        # Both workers full (IN_FLIGHT leases each): the one killed leaves leases behind.
        await leased_at_once(database_url, 2 * int(IN_FLIGHT))
        await processes[2].kill()
        smtp.delay = 0.0
        statuses = await _all_final(apis, list(more))
        assert statuses == ["processed"] * 20, statuses
    sent = pkeys_of(smtp.messages)
    assert {m["PKey"] for m in more} <= set(sent), "an event lost"
    # The killed worker's leases ended and the other claimed those events again.
    claimed_twice = await pg_value(
        database_url,
        "SELECT count(*) FROM events WHERE attempts > 1 AND pkey = ANY($1)",
        [m["PKey"] for m in more],
    )
    assert claimed_twice >= 1, "no event of the killed worker was taken over"
    # At most the killed worker's sends under way went out twice (sent, not yet recorded).
    twice = [p for p, n in Counter(sent).items() if n > 1]
    assert len(twice) <= int(IN_FLIGHT), twice


test_two_apis_and_two_workers_on_one_postgresql.postgresql_only = True  # type: ignore[attr-defined]
