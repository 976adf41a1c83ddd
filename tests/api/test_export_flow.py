"""Message export end to end, over HTTP: sends with export on land in the dataset, export
flows deliver them as Parquet (local folder) and NDJSON (S3 server on loopback), and the files
read back (pyarrow, DuckDB) hold exactly what the SMTP server received."""

from __future__ import annotations

import asyncio
import email.utils
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import httpx
from pyarrow import fs as pafs

from export_support import (
    S3_KEY_ID,
    S3_SECRET,
    list_files,
    read_ndjson_files,
    read_parquet_files,
    untagged,
)
from helpers import live_event, live_sms_event, trigger, wait_status
from txmsg.testing import FakeSMTPServer, FakeTwilio

ADA_CTX = {"firstName": "Ada", "orderId": "A-17"}
PEOPLE = [("Ada", "ada@example.org"), ("Bob", "bob@example.net"), ("Zoë", "zoe@example.com")]


async def _send(client: httpx.AsyncClient, event_id: str, name: str, address: str) -> str:
    accepted = await trigger(client, event_id, {"email": address, "ctx": {"firstName": name}})
    await wait_status(client, accepted["href"], "processed")
    return str(accepted["PKey"])


async def _records(admin: httpx.AsyncClient, **params: Any) -> list[dict[str, Any]]:
    r = await admin.get("/api/v1/message-export/records", params=params)
    assert r.status_code == 200, r.text
    items: list[dict[str, Any]] = r.json()["items"]
    return items


def _expected(mail: Any, event_id: str) -> dict[str, Any]:
    """A dataset record as the SMTP server saw the message."""
    pkey = mail.message["Message-ID"][1:].split("@")[0]
    from_name, from_email = email.utils.parseaddr(mail.message["From"])
    return {
        "eventType": "message.sent",
        "channel": "email",
        "messageID": pkey,
        "eventId": event_id,
        "messagePublicationID": f"{event_id}/1",
        "isTestExecution": False,
        "recipient": {"email": mail.rcpt_tos[0], "name": None},
        "sender": {
            "email": from_email,
            "name": from_name,
            "replyToEmail": mail.message["Reply-To"],
        },
        "content": {"subject": mail.subject, "html": mail.html, "text": mail.text},
    }


def _comparable(record: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in record.items() if k not in ("timestamp", "ingestion_time", "id")}
    # Parquet structs carry every channel's fields; an email record leaves the SMS ones null.
    out["recipient"] = {k: v for k, v in out["recipient"].items() if k != "number"}
    out["sender"] = {k: v for k, v in out["sender"].items() if k != "numbers"}
    out["content"] = {k: v for k, v in out["content"].items() if k != "message"}
    out.pop("profileID", None)
    return out


async def test_export_dataset_and_flows_end_to_end(
    server: Any, smtp: FakeSMTPServer, s3: Any, tmp_path: Path
) -> None:
    admin = server.admin
    event_id = await live_event(admin, smtp)

    # 1. export off: the sent message never reaches the dataset (and is never backfilled)
    before = await _send(admin, event_id, "Early", "early@example.org")
    assert await _records(admin) == []

    # 2. export on: every message sent from now on has a record
    r = await admin.patch("/api/v1/channel-configs/mail", json={"message_export": True})
    assert r.status_code == 200 and r.json()["message_export"] is True, r.text
    pkeys = [await _send(admin, event_id, name, address) for name, address in PEOPLE]

    # 3. export off again: new messages are not recorded, the existing records stay
    r = await admin.patch("/api/v1/channel-configs/mail", json={"message_export": False})
    assert r.status_code == 200, r.text
    after = await _send(admin, event_id, "Late", "late@example.org")

    mails = await smtp.wait_for(5)
    by_pkey = {m.message["Message-ID"][1:].split("@")[0]: m for m in mails}
    assert set(by_pkey) == {before, *pkeys, after}
    records = await _records(admin)
    assert [r["messageID"] for r in records] == pkeys
    for record in records:
        assert _comparable(record) == _expected(by_pkey[record["messageID"]], event_id)
        sent = datetime.fromisoformat(record["timestamp"])
        ingested = datetime.fromisoformat(record["ingestion_time"])
        assert abs(sent - datetime.now(UTC)) < timedelta(minutes=1)
        assert sent <= ingested
    # paging by id
    first, second = await _records(admin, limit=2), await _records(admin, after=records[1]["id"])
    assert [r["id"] for r in first + second] == [r["id"] for r in records]

    # 4. a Parquet flow to a local folder
    folder = tmp_path / "export"
    r = await admin.post(
        "/api/v1/export-flows",
        json={
            "name": "lake",
            "format": "parquet",
            "destination": {"type": "local", "path": str(folder)},
            "schedule": "PT1H",
            "compression": "zstd",
        },
    )
    assert r.status_code == 201, r.text
    r = await admin.post("/api/v1/export-flows/lake/run")
    assert r.status_code == 200, r.text
    run = r.json()
    assert run["status"] == "succeeded" and run["records"] == 3 and run["error"] is None, run
    day = datetime.fromisoformat(records[0]["timestamp"]).strftime("%Y-%m-%d")
    assert untagged(run["files"]) == [f"date={day}/part-1-0.parquet"]
    local = pafs.LocalFileSystem()
    assert list_files(local, str(folder)) == run["files"]  # no temporary file left behind
    table = read_parquet_files(local, str(folder), run["files"])
    assert table.schema.field("recipient").type.num_fields == 3
    rows = table.to_pylist()
    assert [row["messageID"] for row in rows] == pkeys
    for row, record in zip(rows, records, strict=True):
        assert row["timestamp"] == datetime.fromisoformat(record["timestamp"])
        assert row["ingestion_time"] == datetime.fromisoformat(record["ingestion_time"])
        assert _comparable(row) == _expected(by_pkey[row["messageID"]], event_id)
    # DuckDB reads the partitioned files (hive partition `date`) and the nested fields
    found = duckdb.sql(
        f"SELECT messageID, recipient.email, content.subject, sender.replyToEmail, "
        f"CAST(date AS VARCHAR) "
        f"FROM read_parquet('{folder}/*/*.parquet', hive_partitioning = true) ORDER BY timestamp"
    ).fetchall()
    assert found == [
        (p, by_pkey[p].rcpt_tos[0], by_pkey[p].subject, "help@example.com", day) for p in pkeys
    ]

    # incremental: a second run exports nothing more, and writes no file
    r = await admin.post("/api/v1/export-flows/lake/run")
    assert r.json()["status"] == "succeeded" and r.json()["records"] == 0, r.text
    assert r.json()["files"] == [] and list_files(local, str(folder)) == run["files"]

    # 5. an NDJSON flow (gzip) to the S3 server
    bucket_name = s3.make_bucket()
    r = await admin.post(
        "/api/v1/export-flows",
        json={
            "name": "bucket",
            "format": "json",
            "compression": "gzip",
            "destination": {
                "type": "s3",
                "bucket": bucket_name,
                "prefix": "txmsg/dataset",
                "endpoint_url": s3.endpoint_url,
                "region": "us-east-1",
                "access_key_id": S3_KEY_ID,
                "secret_access_key": S3_SECRET,
            },
        },
    )
    assert r.status_code == 201, r.text
    flow = r.json()
    assert flow["destination"]["secret_access_key_set"] is True
    assert S3_SECRET not in r.text
    r = await admin.post("/api/v1/export-flows/bucket/run")
    s3_run = r.json()
    assert s3_run["status"] == "succeeded" and s3_run["records"] == 3, s3_run
    assert untagged(s3_run["files"]) == [f"date={day}/part-1-0.ndjson.gz"]
    assert list_files(s3.fs, f"{bucket_name}/txmsg/dataset") == s3_run["files"]
    lines = read_ndjson_files(s3.fs, f"{bucket_name}/txmsg/dataset", s3_run["files"])
    assert [{k: v for k, v in r.items()} for r in lines] == [
        {k: v for k, v in r.items() if k != "id"} for r in records
    ]
    for line in lines:
        assert _comparable(line) == _expected(by_pkey[line["messageID"]], event_id)

    # 6. export on again: only the new message goes out on the next runs, to both
    await admin.patch("/api/v1/channel-configs/mail", json={"message_export": True})
    newest = await _send(admin, event_id, "New", "new@example.org")
    bucket = f"{bucket_name}/txmsg/dataset"
    for name, fs, base, number in (
        ("lake", local, str(folder), 3),
        ("bucket", s3.fs, bucket, 2),
    ):
        r = await admin.post(f"/api/v1/export-flows/{name}/run")
        again = r.json()
        assert again["status"] == "succeeded" and again["records"] == 1, again
        assert untagged(again["files"])[0].split("/")[1].startswith(f"part-{number}-0.")
        written = (
            read_parquet_files(fs, base, again["files"]).to_pylist()
            if name == "lake"
            else read_ndjson_files(fs, base, again["files"])
        )
        assert [w["messageID"] for w in written] == [newest]
    r = await admin.get("/api/v1/export-flows/lake/runs")
    assert [(x["run"], x["records"]) for x in r.json()["items"]] == [(3, 1), (2, 0), (1, 3)]

    # 7. retention: records expire after 7 days; the scheduler's purge removes them
    exporter = server.app.state.exporter
    real_clock = exporter.clock
    exporter.clock = lambda: real_clock() + timedelta(days=7, minutes=1)
    await wait_until_async(lambda: _records(admin), lambda items: items == [], "purge")
    exporter.clock = real_clock


async def wait_until_async(fetch: Any, done: Any, what: str, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        if done(await fetch()):
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{what} not reached within {timeout}s")
        await asyncio.sleep(0.05)


async def test_sent_sms_join_the_dataset(server: Any, fake_twilio: FakeTwilio) -> None:
    admin = server.admin
    event_id = await live_sms_event(admin, fake_twilio, server.base_url, "codeSent")
    r = await admin.patch("/api/v1/channel-configs/sms", json={"message_export": True})
    assert r.status_code == 200, r.text
    accepted = await trigger(admin, event_id, {"mobilePhone": "+1 415 555 2671", "ctx": ADA_CTX})
    await wait_status(admin, accepted["href"], "processed")
    [sms] = await fake_twilio.wait_for(1)
    [record] = await _records(admin)
    assert record["channel"] == "sms" and record["messageID"] == accepted["PKey"]
    assert record["eventId"] == event_id and record["messagePublicationID"] == f"{event_id}/1"
    assert record["recipient"] == {"number": sms.to}
    assert record["sender"] == {"numbers": [sms.from_]}
    assert record["content"] == {"message": sms.body}
