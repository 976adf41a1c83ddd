"""The interaction-data lifecycle end to end: inactive events' delivery-log rows expire to
Parquet (moved by the housekeeping scheduler, on an injected clock), reports keep their
aggregates and say what is missing, restores bring back exactly what left, and restored
data expires again after another inactive period."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from helpers import (
    assert_problem,
    create_channel,
    create_event,
    delivery_log_answer,
    publish_message,
    trigger,
    wait_status,
)
from txmsg.core.delivery import Interaction, LogEntry
from txmsg.core.timeutil import isoformat
from txmsg.store import delivery_log
from txmsg.store.db import Database
from txmsg.testing import FakeSMTPServer


async def make_live(admin: Any, name: str, tags: list[str]) -> str:
    created = await create_event(admin, name, tags=tags)
    eid: str = created["eventId"]
    assert (await admin.post(f"/api/v1/event-configs/{eid}/publish")).status_code == 200
    await publish_message(admin, eid)
    return eid


async def send(admin: Any, eid: str, email: str) -> str:
    accepted = await trigger(admin, eid, {"email": email, "ctx": {"firstName": "Ada"}})
    await wait_status(admin, accepted["href"], "processed")
    return str(accepted["PKey"])


async def recipients(admin: Any, eid: str) -> tuple[str, str]:
    r = await admin.get(f"/api/v1/reports/{eid}/recipients")
    assert r.status_code == 200, r.text
    return r.headers["txmsg-interactions-expired"], r.text


async def delivery_log_of(admin: Any, eid: str, pkey: str) -> tuple[bool, list[Any]]:
    answer = await delivery_log_answer(admin, eid, pkey)
    return answer["interactions_expired"], answer["items"]


async def entries(store: Database, pkeys: list[str]) -> list[LogEntry]:
    out: list[LogEntry] = []
    for pkey in pkeys:
        out.extend(await store.read(delivery_log.for_event, pkey))
    return out


async def test_expire_restore_and_expire_again(
    server: Any, smtp: FakeSMTPServer, store: Database, data_dir: Path
) -> None:
    admin = server.admin
    lifecycle = server.app.state.lifecycle
    await create_channel(admin, smtp)
    paused = await make_live(admin, "paused", ["shop"])
    gone = await make_live(admin, "gone", ["shop"])
    live = await make_live(admin, "live", ["shop"])
    sent = {
        eid: [await send(admin, eid, f"{i}@example.org") for i in range(2)]
        for eid in (paused, gone, live)
    }
    t0 = datetime(2026, 11, 20, 8, 30, 15, 123000, tzinfo=UTC)
    await store.write(
        delivery_log.append_in,
        [
            LogEntry(pkey, eid, kind, t0 + timedelta(minutes=i), detail)
            for eid, pkeys in sent.items()
            for pkey in pkeys
            for i, (kind, detail) in enumerate(
                [
                    (Interaction.DELIVERED, {"provider": {"code": 250, "text": "ok é"}}),
                    (Interaction.OPENED, None),
                    (Interaction.CLICKED, {"url": "https://example.com/a?b=1"}),
                    (Interaction.OPENED, None),
                ]
            )
        ],
    )
    before_entries = {eid: await entries(store, pkeys) for eid, pkeys in sent.items()}
    assert all(len(e) == 8 for e in before_entries.values())
    before_recipients = {eid: await recipients(admin, eid) for eid in sent}
    before_report = {eid: (await admin.get(f"/api/v1/reports/{eid}")).json() for eid in sent}
    assert before_report[paused]["total"]["opened_unique"] == 2

    await admin.post(f"/api/v1/event-configs/{paused}/pause")
    await admin.post(f"/api/v1/event-configs/{gone}/unpublish")
    real = datetime.now(UTC)

    # Not inactive for long enough yet: nothing moves.
    lifecycle.clock = lambda: real + timedelta(days=60)
    assert await lifecycle.expire_inactive() == 0

    # 91 days later the housekeeping scheduler expires the paused and the unpublished event.
    lifecycle.clock = lambda: real + timedelta(days=91)

    async def expired_by_the_scheduler(eid: str) -> None:
        for _ in range(200):
            flag = (await recipients(admin, eid))[0]
            if flag == "true" and not await entries(store, sent[eid]):
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"{eid} did not expire")

    for eid in (paused, gone):
        await expired_by_the_scheduler(eid)
    assert await entries(store, sent[live]) == before_entries[live]  # published: kept
    assert (await recipients(admin, live))[0] == "false"

    # Moved to Parquet in the data directory, whole.
    files = sorted((data_dir / "interactions" / f"event_id={paused}").glob("*.parquet"))
    assert len(files) == 1
    archived = pq.read_table(files[0]).to_pylist()
    assert sorted((r["pkey"], r["kind"], r["at"]) for r in archived) == sorted(
        (e.pkey, e.kind.value, e.at) for e in before_entries[paused]
    )

    # Reports: aggregates intact; the recipients report and the delivery log say what they lack.
    before_log = await delivery_log_of(admin, paused, sent[paused][0])
    # What stays of an expired email's log: its send and delivery (the event's own time).
    assert before_log[0] is True
    assert [e["kind"] for e in before_log[1]] == ["sent", "delivered"]
    live_log = await delivery_log_of(admin, live, sent[live][0])
    assert live_log[0] is False and len(live_log[1]) == 6
    for eid in (paused, gone):
        assert (await admin.get(f"/api/v1/reports/{eid}")).json() == before_report[eid]
        flag, text = await recipients(admin, eid)
        assert flag == "true" and text != before_recipients[eid][1]
        assert "example.com" not in text and "0@example.org" in text
        r = await admin.get(f"/api/v1/reports/{eid}/recipients", params={"format": "json"})
        assert r.json()["interactions_expired"] is True
        assert all(item["opened_count"] == 0 for item in r.json()["items"])

    # Restore one, then the rest by tag: the same rows, the same reports.
    r = await admin.post(f"/api/v1/event-configs/{paused}/restore-interactions")
    assert r.status_code == 200, r.text
    assert r.json() == {"eventId": paused, "files": 1, "rows": 8}
    assert await entries(store, sent[paused]) == before_entries[paused]
    assert await recipients(admin, paused) == ("false", before_recipients[paused][1])
    restored_log = await delivery_log_of(admin, paused, sent[paused][0])
    assert restored_log[0] is False
    # The restored entries, in order, and the email's send and delivery (from the event itself).
    stored = [(i["kind"], i["at"], i["detail"]) for i in restored_log[1]]
    synthesized = [i for i in stored if i[0] in ("sent", "delivered") and i[2] == {}]
    assert [i[0] for i in synthesized[:2]] == ["sent", "delivered"]
    assert synthesized[0][1] == synthesized[1][1]
    stored.remove(synthesized[0])
    stored.remove(synthesized[1])
    assert stored == [
        (e.kind.value, isoformat(e.at), e.detail or {})
        for e in before_entries[paused]
        if e.pkey == sent[paused][0]
    ]
    r = await admin.post("/api/v1/event-configs:restore-interactions", json={"tag": "shop"})
    assert r.status_code == 200, r.text
    assert r.json() == {
        "tag": "shop",
        "items": [
            {"eventId": gone, "files": 1, "rows": 8},
            {"eventId": live, "files": 0, "rows": 0},
            {"eventId": paused, "files": 0, "rows": 0},
        ],
    }
    assert await entries(store, sent[gone]) == before_entries[gone]
    assert await recipients(admin, gone) == ("false", before_recipients[gone][1])
    for eid in sent:
        assert (await admin.get(f"/api/v1/reports/{eid}")).json() == before_report[eid]

    # Restored data expires again after another inactive period, counted from the restore.
    lifecycle.clock = lambda: real + timedelta(days=91 + 60)
    assert await lifecycle.expire_inactive() == 0
    lifecycle.clock = lambda: real + timedelta(days=91 + 91)
    for eid in (paused, gone):
        await expired_by_the_scheduler(eid)
    files = sorted((data_dir / "interactions" / f"event_id={paused}").glob("*.parquet"))
    assert len(files) == 2  # archives are never deleted
    r = await admin.post(f"/api/v1/event-configs/{paused}/restore-interactions")
    assert r.json()["rows"] == 8
    assert await entries(store, sent[paused]) == before_entries[paused]

    # Restored first opens and clicks are still the first: the same person opening again is an
    # open, not a unique one.
    again = [
        LogEntry(sent[paused][0], paused, kind, t0 + timedelta(hours=1), detail)
        for kind, detail in ((Interaction.OPENED, None), (Interaction.CLICKED, {"url": "x"}))
    ]
    await store.write(delivery_log.append_in, again)
    total = (await admin.get(f"/api/v1/reports/{paused}")).json()["total"]
    before = before_report[paused]["total"]
    assert total["opened"] == before["opened"] + 1 and total["clicked"] == before["clicked"] + 1
    assert total["opened_unique"] == before["opened_unique"] == 2
    assert total["clicked_unique"] == before["clicked_unique"] == 2


async def test_restore_requests_are_checked(server: Any) -> None:
    admin = server.admin
    assert_problem(await admin.post("/api/v1/event-configs/EVTnope/restore-interactions"), 404)
    url = "/api/v1/event-configs:restore-interactions"
    assert_problem(await admin.post(url, json={}), 400, "tag")
    assert_problem(await admin.post(url, json={"tag": "a b"}), 400, "tag")
    assert_problem(await admin.post(url, json={"tag": "x", "more": 1}), 400, "more")
    r = await admin.post(url, json={"tag": "nothing"})
    assert r.json() == {"tag": "nothing", "items": []}
