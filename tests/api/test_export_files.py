"""Export flows never read a record twice from their destination: a run's first attempt
overwrites no file (another flow's, sharing the folder), and a failed run's retry writes its
files under the names it began with (no change of format or compression meanwhile)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pyarrow import fs as pafs

from export_support import list_files, read_ndjson_files
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


async def test_a_flow_never_overwrites_another_flows_files(
    server: Any, smtp: FakeSMTPServer, tmp_path: Path
) -> None:
    admin = server.admin
    pkeys = await _sent_with_export(admin, smtp, 3)
    folder = tmp_path / "shared"
    assert (await admin.post(FLOWS, json=_flow("first", folder))).status_code == 201
    r = await admin.post(f"{FLOWS}/first/run")
    assert r.json()["status"] == "succeeded", r.text
    local = pafs.LocalFileSystem()
    files = list_files(local, str(folder))
    before = {f: (folder / f).read_bytes() for f in files}
    # A second flow into the same folder: its run 1 would write run 1's names.
    assert (await admin.post(FLOWS, json=_flow("second", folder))).status_code == 201
    run = (await admin.post(f"{FLOWS}/second/run")).json()
    assert run["status"] == "failed", run
    assert "exists already" in run["error"] and "destination of its own" in run["error"], run
    assert {f: (folder / f).read_bytes() for f in list_files(local, str(folder))} == before
    assert sorted(r["messageID"] for r in _read(local, folder)) == sorted(pkeys)


async def test_a_failed_runs_format_stays_until_its_retry_succeeded(
    server: Any, smtp: FakeSMTPServer, tmp_path: Path
) -> None:
    admin = server.admin
    pkeys = await _sent_with_export(admin, smtp, 2)
    folder = tmp_path / "out"
    assert (await admin.post(FLOWS, json=_flow("lake", folder))).status_code == 201
    # The run's file cannot be written: a folder holds its name.
    day = datetime.now(UTC).strftime("%Y-%m-%d")
    blocker = folder / f"date={day}" / "part-1-0.ndjson"
    blocker.mkdir(parents=True)
    assert (await admin.post(f"{FLOWS}/lake/run")).json()["status"] == "failed"
    r = await admin.patch(f"{FLOWS}/lake", json={"compression": "gzip"})
    assert_problem(r, 409)
    assert (await admin.get(f"{FLOWS}/lake")).json()["compression"] == "none"
    blocker.rmdir()
    run = (await admin.post(f"{FLOWS}/lake/run")).json()
    assert (run["run"], run["status"], run["files"]) == (
        1,
        "succeeded",
        [f"date={day}/part-1-0.ndjson"],
    )
    local = pafs.LocalFileSystem()
    assert sorted(r["messageID"] for r in _read(local, folder)) == sorted(pkeys)
    r = await admin.patch(f"{FLOWS}/lake", json={"compression": "gzip"})  # succeeded: free
    assert r.status_code == 200 and r.json()["compression"] == "gzip", r.text
