"""Export flows never replace another flow's files: a run's file names hold a tag of its own
(another flow sharing the folder, a copy of its files, a flow deleted and made again: none is
overwritten, by a first attempt or a retry), and a failed run's retry writes its files under
the names it began with (no change of format or compression meanwhile)."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
from pyarrow import fs as pafs

from export_support import S3_KEY_ID, S3_SECRET, S3Server, list_files, read_ndjson_files
from helpers import assert_problem, live_event, trigger, wait_status
from txmsg.testing import FakeSMTPServer

FLOWS = "/api/v1/export-flows"


async def _sent_with_export(admin: Any, smtp: FakeSMTPServer, count: int) -> list[str]:
    event_id = await live_event(admin, smtp)
    r = await admin.patch("/api/v1/channel-configs/mail", json={"message_export": True})
    assert r.status_code == 200, r.text
    return [await _send(admin, event_id, i) for i in range(count)]


async def _send(admin: Any, event_id: str, i: int) -> str:
    body = {"email": f"u{i}@example.org", "ctx": {"firstName": "Ada"}}
    accepted = await trigger(admin, event_id, body)
    await wait_status(admin, accepted["href"], "processed")
    return str(accepted["PKey"])


def _read(local: pafs.FileSystem, folder: Path) -> list[dict[str, Any]]:
    return read_ndjson_files(local, str(folder), list_files(local, str(folder)))


def _flow(name: str, folder: Path) -> dict[str, Any]:
    return {"name": name, "format": "json", "destination": {"type": "local", "path": str(folder)}}


def _bytes(folder: Path, files: list[str]) -> dict[str, bytes]:
    return {f: (folder / f).read_bytes() for f in files}


async def _run_twice(admin: Any, name: str) -> list[dict[str, Any]]:
    """A run, and the next (the retry, had the first failed)."""
    return [(await admin.post(f"{FLOWS}/{name}/run")).json() for _ in range(2)]


async def test_a_flow_never_overwrites_another_flows_files(
    server: Any, smtp: FakeSMTPServer, tmp_path: Path
) -> None:
    admin = server.admin
    event_id = await live_event(admin, smtp)
    r = await admin.patch("/api/v1/channel-configs/mail", json={"message_export": True})
    assert r.status_code == 200, r.text
    pkeys = [await _send(admin, event_id, i) for i in range(3)]
    folder = tmp_path / "first"
    assert (await admin.post(FLOWS, json=_flow("first", folder))).status_code == 201
    r = await admin.post(f"{FLOWS}/first/run")
    assert r.json()["status"] == "succeeded", r.text
    local = pafs.LocalFileSystem()
    theirs = _bytes(folder, list_files(local, str(folder)))
    assert len(theirs) == 1
    pkeys += [await _send(admin, event_id, i) for i in range(3, 5)]
    # A second flow writing into a copy of the first's folder, and one into the folder itself:
    # their runs number from 1 too, and neither first attempt nor retry replaces those files.
    copy = tmp_path / "copy"
    shutil.copytree(folder, copy)
    for name, where in (("copied", copy), ("shared", folder)):
        assert (await admin.post(FLOWS, json=_flow(name, where))).status_code == 201
        first, second = await _run_twice(admin, name)
        assert _bytes(where, list(theirs)) == theirs
        assert first["status"] == "succeeded" and first["records"] == 5, first
        assert (second["run"], second["status"], second["records"]) == (2, "succeeded", 0)
        assert not set(first["files"]) & set(theirs)
        ours = read_ndjson_files(local, str(where), first["files"])
        assert sorted(r["messageID"] for r in ours) == sorted(pkeys)


async def test_a_flow_made_again_never_overwrites_the_files_of_the_deleted_one(
    server: Any, smtp: FakeSMTPServer, tmp_path: Path
) -> None:
    admin = server.admin
    event_id = await live_event(admin, smtp)
    r = await admin.patch("/api/v1/channel-configs/mail", json={"message_export": True})
    assert r.status_code == 200, r.text
    pkeys = [await _send(admin, event_id, i) for i in range(3)]
    folder = tmp_path / "lake"
    assert (await admin.post(FLOWS, json=_flow("lake", folder))).status_code == 201
    assert (await admin.post(f"{FLOWS}/lake/run")).json()["status"] == "succeeded"
    local = pafs.LocalFileSystem()
    before = _bytes(folder, list_files(local, str(folder)))
    assert (await admin.delete(f"{FLOWS}/lake")).status_code == 204
    pkeys += [await _send(admin, event_id, i) for i in range(3, 5)]
    # Made again, same name and folder: it numbers its runs from 1 again, from watermark 0.
    assert (await admin.post(FLOWS, json=_flow("lake", folder))).status_code == 201
    first, _ = await _run_twice(admin, "lake")
    assert _bytes(folder, list(before)) == before
    assert (first["run"], first["status"], first["records"]) == (1, "succeeded", 5), first
    again = read_ndjson_files(local, str(folder), first["files"])
    assert sorted(r["messageID"] for r in again) == sorted(pkeys)


async def test_a_failed_runs_format_stays_until_its_retry_succeeded(
    server: Any, smtp: FakeSMTPServer, tmp_path: Path
) -> None:
    admin = server.admin
    pkeys = await _sent_with_export(admin, smtp, 2)
    folder = tmp_path / "out"
    assert (await admin.post(FLOWS, json=_flow("lake", folder))).status_code == 201
    # The run's file cannot be written: a file holds the name of its day's folder.
    day = datetime.now(UTC).strftime("%Y-%m-%d")
    blocker = folder / f"date={day}"
    folder.mkdir()
    blocker.write_bytes(b"")
    failed = (await admin.post(f"{FLOWS}/lake/run")).json()
    assert failed["status"] == "failed", failed
    r = await admin.patch(f"{FLOWS}/lake", json={"compression": "gzip"})
    assert_problem(r, 409)
    assert (await admin.get(f"{FLOWS}/lake")).json()["compression"] == "none"
    blocker.unlink()
    run = (await admin.post(f"{FLOWS}/lake/run")).json()
    assert (run["run"], run["status"], run["attempts"]) == (1, "succeeded", 2), run
    assert re.fullmatch(rf"date={day}/part-1-[0-9a-f]{{8}}-0\.ndjson", *run["files"]), run
    local = pafs.LocalFileSystem()
    assert sorted(r["messageID"] for r in _read(local, folder)) == sorted(pkeys)
    r = await admin.patch(f"{FLOWS}/lake", json={"compression": "gzip"})  # succeeded: free
    assert r.status_code == 200 and r.json()["compression"] == "gzip", r.text


async def test_local_files_are_on_disk_before_the_watermark_moves(
    server: Any, smtp: FakeSMTPServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    admin = server.admin
    await _sent_with_export(admin, smtp, 2)
    folder = tmp_path / "lake"
    assert (await admin.post(FLOWS, json=_flow("lake", folder))).status_code == 201
    synced: list[str] = []
    fsync = os.fsync

    def recording(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        fsync(fd)

    monkeypatch.setattr(os, "fsync", recording)
    run = (await admin.post(f"{FLOWS}/lake/run")).json()
    monkeypatch.undo()
    assert run["status"] == "succeeded", run
    [name] = run["files"]
    day_folder, file = name.split("/")
    # the content under its temporary name, then the rename in its folder; the new day
    # folder in the destination, and the destination in its parent
    ours = [p for p in synced if p.startswith(str(tmp_path))]
    assert ours.index(str(folder / day_folder / f".{file}.tmp")) < ours.index(
        str(folder / day_folder)
    ), ours
    assert {str(folder), str(tmp_path)} <= set(ours), ours


async def test_s3_holds_the_run_files_only(server: Any, smtp: FakeSMTPServer, s3: S3Server) -> None:
    admin = server.admin
    await _sent_with_export(admin, smtp, 2)
    bucket = s3.make_bucket()
    destination = {
        "type": "s3",
        "bucket": bucket,
        "prefix": "txmsg/dataset",
        "endpoint_url": s3.endpoint_url,
        "access_key_id": S3_KEY_ID,
        "secret_access_key": S3_SECRET,
    }
    flow = {"name": "bucket", "format": "parquet", "destination": destination}
    assert (await admin.post(FLOWS, json=flow)).status_code == 201
    run = (await admin.post(f"{FLOWS}/bucket/run")).json()
    assert run["status"] == "succeeded", run
    client = boto3.client(
        "s3",
        endpoint_url=s3.endpoint_url,
        aws_access_key_id=S3_KEY_ID,
        aws_secret_access_key=S3_SECRET,
        region_name="us-east-1",
    )
    listed = await asyncio.to_thread(client.list_objects_v2, Bucket=bucket)
    keys = sorted(o["Key"] for o in listed.get("Contents", []))
    # no empty `prefix/` folder markers, no temporary object left
    assert keys == [f"txmsg/dataset/{f}" for f in run["files"]]
