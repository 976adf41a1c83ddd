"""Export flow requests over HTTP: bad input named field by field, write-only secrets, PATCH
semantics, the retention rule, and the scheduler running due flows inside the server."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from helpers import assert_problem, forbid_server_errors

FLOWS = "/api/v1/export-flows"


def _local(path: Path, **extra: Any) -> dict[str, Any]:
    return {
        "name": "lake",
        "format": "parquet",
        "destination": {"type": "local", "path": str(path)},
        **extra,
    }


def _s3(**destination: Any) -> dict[str, Any]:
    return {
        "name": "bucket",
        "format": "json",
        "destination": {
            "type": "s3",
            "bucket": "exports",
            "access_key_id": "AKID",
            "secret_access_key": "top-secret",
            **destination,
        },
    }


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"format": "csv"}, "format"),
        ({"format": None}, "format"),
        ({"destination": None}, "destination"),
        ({"destination": {"type": "ftp"}}, "destination.type"),
        ({"destination": {"type": "local", "path": "relative/dir"}}, "destination.path"),
        ({"destination": {"type": "local", "path": "/srv/out/../../etc"}}, "destination.path"),
        ({"destination": {"type": "local", "path": "/srv/.."}}, "destination.path"),
        ({"destination": {"type": "local"}}, "destination.path"),
        ({"destination": {"type": "local", "path": "/x", "bucket": "b"}}, "destination.bucket"),
        ({"destination": {"type": "s3", "bucket": "Not_A_Bucket"}}, "destination.bucket"),
        ({"destination": {"type": "s3"}}, "destination.bucket"),
        (
            {"destination": {"type": "s3", "bucket": "abc", "endpoint_url": "ftp://x"}},
            "destination.endpoint_url",
        ),
        (
            {"destination": {"type": "s3", "bucket": "abc", "endpoint_url": "http://[::1"}},
            "destination.endpoint_url",
        ),
        (
            {"destination": {"type": "s3", "bucket": "abc", "endpoint_url": "http://h:99999"}},
            "destination.endpoint_url",
        ),
        *(
            (
                {"destination": {"type": "s3", "bucket": "abc", "endpoint_url": url}},
                "destination.endpoint_url",
            )
            # Credentials in the URL would be shown back in every answer, unsealed.
            for url in ("http://user:pw@127.0.0.1:9000", "http://h?x=1", "http://h#f")
        ),
        (
            {"destination": {"type": "s3", "bucket": "abc", "access_key_id": "only-the-id"}},
            "destination.secret_access_key",
        ),
        ({"destination": {"type": "s3", "bucket": "abc", "prefix": "/abs"}}, "destination.prefix"),
        ({"schedule": "hourly"}, "schedule"),
        ({"schedule": "PT30S"}, "schedule"),
        ({"schedule": "P3661D"}, "schedule"),
        ({"compression": "brotli"}, "compression"),
        ({"name": "bad name"}, "name"),
        ({"color": "blue"}, "color"),
    ],
)
async def test_bad_flows_are_refused_naming_the_field(
    server: Any, tmp_path: Path, change: dict[str, Any], field: str
) -> None:
    admin = forbid_server_errors(server.admin)
    r = await admin.post(FLOWS, json={**_local(tmp_path), **change})
    assert_problem(r, 400, field)
    assert (await admin.get(FLOWS)).json()["items"] == []  # nothing half-written


async def test_the_schedule_may_not_outlast_retention(server: Any, tmp_path: Path) -> None:
    r = await server.admin.post(FLOWS, json=_local(tmp_path, schedule="P8D"))
    body = assert_problem(r, 422, "schedule")  # the installation's retention, not the spec's
    assert "retention" in body["detail"] and "7 days" in body["detail"]
    r = await server.admin.post(FLOWS, json=_local(tmp_path, schedule="P7D"))
    assert r.status_code == 201, r.text
    r = await server.admin.patch(f"{FLOWS}/lake", json={"schedule": "P7DT1H"})
    assert_problem(r, 422, "schedule")


@pytest.mark.server_settings(export_retention_days=0.5)
async def test_a_fractional_retention_is_told_as_it_is(server: Any, tmp_path: Path) -> None:
    r = await server.admin.post(FLOWS, json=_local(tmp_path, schedule="PT13H"))
    body = assert_problem(r, 422, "schedule")
    assert "(0.5 days)" in body["detail"], body
    r = await server.admin.post(FLOWS, json=_local(tmp_path, schedule="PT12H"))
    assert r.status_code == 201, r.text


async def test_secret_is_write_only_and_patch_merges(server: Any) -> None:
    admin = forbid_server_errors(server.admin)
    r = await admin.post(FLOWS, json=_s3(prefix="a/b"))
    assert r.status_code == 201, r.text
    created = r.json()
    assert "top-secret" not in r.text and created["destination"]["secret_access_key_set"]
    assert created["compression"] == "none" and created["schedule"] == "PT1H"
    # keys given replace the stored ones; the secret stays unless given
    r = await admin.patch(f"{FLOWS}/bucket", json={"destination": {"prefix": "c"}})
    assert r.status_code == 200, r.text
    dest = r.json()["destination"]
    assert (dest["prefix"], dest["bucket"], dest["secret_access_key_set"]) == ("c", "exports", True)
    # clearing the secret alone leaves a key id without secret: refused, nothing changed
    r = await admin.patch(f"{FLOWS}/bucket", json={"destination": {"secret_access_key": None}})
    assert_problem(r, 422, "destination.secret_access_key")  # the stored key id refuses it
    r = await admin.patch(
        f"{FLOWS}/bucket",
        json={"destination": {"secret_access_key": None, "access_key_id": None}},
    )
    assert r.status_code == 200, r.text
    assert r.json()["destination"]["secret_access_key_set"] is False
    # another type starts afresh; a compression of the other format is refused
    r = await admin.patch(f"{FLOWS}/bucket", json={"destination": {"type": "local", "path": "/x"}})
    assert r.json()["destination"] == {"type": "local", "path": "/x"}, r.text
    assert_problem(await admin.patch(f"{FLOWS}/bucket", json={"compression": "zstd"}), 422)
    r = await admin.patch(f"{FLOWS}/bucket", json={"format": "parquet", "compression": "zstd"})
    assert (r.json()["format"], r.json()["compression"]) == ("parquet", "zstd"), r.text
    assert_problem(await admin.patch(f"{FLOWS}/bucket", json={"name": "x"}), 400, "name")


async def test_a_new_access_key_id_needs_its_secret(server: Any) -> None:
    admin = forbid_server_errors(server.admin)
    r = await admin.post(FLOWS, json=_s3())
    assert r.status_code == 201, r.text
    before = (await admin.get(f"{FLOWS}/bucket")).json()
    # the stored secret is the old key's: it would be sent with another key id
    r = await admin.patch(f"{FLOWS}/bucket", json={"destination": {"access_key_id": "AKIDNEW"}})
    assert_problem(r, 422, "destination.secret_access_key")
    assert "access_key_id" in r.json()["detail"]
    assert (await admin.get(f"{FLOWS}/bucket")).json() == before
    same = before["destination"]["access_key_id"]
    r = await admin.patch(f"{FLOWS}/bucket", json={"destination": {"access_key_id": same}})
    assert r.status_code == 200, r.text  # unchanged: the secret stays
    new = {"access_key_id": "AKIDNEW", "secret_access_key": "new-secret"}
    r = await admin.patch(f"{FLOWS}/bucket", json={"destination": new})
    assert r.status_code == 200, r.text
    dest = r.json()["destination"]
    assert (dest["access_key_id"], dest["secret_access_key_set"]) == ("AKIDNEW", True)


async def test_a_new_endpoint_needs_the_secret_again(server: Any) -> None:
    admin = forbid_server_errors(server.admin)
    r = await admin.post(FLOWS, json=_s3(endpoint_url="https://minio.example.com"))
    assert r.status_code == 201, r.text
    before = (await admin.get(f"{FLOWS}/bucket")).json()
    # the stored secret would sign requests to a host it was not given for
    for endpoint in ("https://elsewhere.example.net", None):
        r = await admin.patch(f"{FLOWS}/bucket", json={"destination": {"endpoint_url": endpoint}})
        assert_problem(r, 422, "destination.secret_access_key")
        assert "endpoint_url" in r.json()["detail"]
        assert (await admin.get(f"{FLOWS}/bucket")).json() == before
    # the same endpoint (as stored), another bucket or prefix: the secret stays
    same = {"endpoint_url": "https://minio.example.com/", "bucket": "other", "prefix": "p"}
    r = await admin.patch(f"{FLOWS}/bucket", json={"destination": same})
    assert r.status_code == 200, r.text
    moved = {"endpoint_url": "https://elsewhere.example.net", "secret_access_key": "theirs"}
    r = await admin.patch(f"{FLOWS}/bucket", json={"destination": moved})
    assert r.status_code == 200, r.text
    dest = r.json()["destination"]
    assert (dest["endpoint_url"], dest["secret_access_key_set"]) == (moved["endpoint_url"], True)


async def test_records_paging_parameters_are_checked(server: Any) -> None:
    records = "/api/v1/message-export/records"
    for params, field in (
        ({"limit": "0"}, "limit"),
        ({"limit": "1001"}, "limit"),
        ({"after": "-1"}, "after"),
        ({"after": "x"}, "after"),
    ):
        assert_problem(await server.admin.get(records, params=params), 400, field)


async def test_the_scheduler_runs_due_flows(server: Any, tmp_path: Path) -> None:
    admin = server.admin
    r = await admin.post(FLOWS, json=_local(tmp_path / "out", schedule="PT1M"))
    assert r.status_code == 201, r.text
    exporter = server.app.state.exporter
    real = exporter.clock
    exporter.clock = lambda: real() + timedelta(minutes=1, seconds=1)
    try:
        for _ in range(200):
            runs = (await admin.get(f"{FLOWS}/lake/runs")).json()["items"]
            if runs and runs[0]["status"] == "succeeded":
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("the scheduler never ran the due flow")
    finally:
        exporter.clock = real
    assert [(x["run"], x["records"]) for x in runs] == [(1, 0)]
    flow = (await admin.get(f"{FLOWS}/lake")).json()
    assert flow["running"] is False and flow["watermark"] == 0


async def test_a_patch_null_for_a_field_of_fixed_values_is_refused_naming_them(
    server: Any, tmp_path: Path
) -> None:
    """Not kept silently (the spec's fields are not nullable): a 400 with the values taken."""
    admin = forbid_server_errors(server.admin)
    r = await admin.post(FLOWS, json=_local(tmp_path, compression="zstd"))
    assert r.status_code == 201, r.text
    for change, field, values in (
        ({"format": None}, "format", "json, parquet"),
        ({"compression": None}, "compression", "snappy, zstd, gzip, none"),
        ({"destination": {"type": None}}, "destination.type", "local, s3"),
    ):
        problem = assert_problem(await admin.patch(f"{FLOWS}/lake", json=change), 400, field)
        assert problem["errors"][0]["detail"] == f"must be one of: {values}", problem
    flow = (await admin.get(f"{FLOWS}/lake")).json()
    assert (flow["format"], flow["compression"]) == ("parquet", "zstd")
    assert flow["destination"] == {"type": "local", "path": str(tmp_path)}
