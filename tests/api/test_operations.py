"""What an operator and a newcomer read: /ready, /metrics, and the hints of first-run errors."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet

from helpers import (
    assert_problem,
    create_channel,
    create_event,
    live_event,
    metrics_showing,
    trigger,
    wait_status,
)
from txmsg.api.probes import Probe, readiness
from txmsg.metrics import Metrics
from txmsg.store.db import Database
from txmsg.store.sealing import Keyring, reseal_all
from txmsg.store.tables import metadata
from txmsg.testing import FakeSMTPServer


def metric(text: str, name: str, **labels: str) -> float:
    """The value of one sample of the exposition (0 when absent)."""
    wanted = ",".join(f'{k}="{v}"' for k, v in labels.items())
    pattern = re.escape(f"{name}{{{wanted}}}" if labels else name) + r" (\S+)"
    found = re.search(rf"^{pattern}$", text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


async def test_metrics_count_sends_errors_latency_and_the_queue(
    server: Any, smtp: FakeSMTPServer
) -> None:
    admin = server.admin
    event_id = await live_event(admin, smtp)
    smtp.fail_next(451, "try later")  # one transient provider error, then the retry sends
    sent = await trigger(admin, event_id)
    await wait_status(admin, sent["href"], "processed")
    await metrics_showing(admin, 'txmsg_sends_total{channel="email",outcome="processed"} 1.0')
    await admin.post(f"/api/v1/event-configs/{event_id}/pause")
    await trigger(admin, event_id)  # waits paused in the queue

    r = await admin.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    text = r.text
    email = {"channel": "email"}
    assert metric(text, "txmsg_sends_total", **email, outcome="processed") == 1
    assert metric(text, "txmsg_sends_total", **email, outcome="pending") == 1  # the retry
    assert metric(text, "txmsg_provider_errors_total", **email, kind="transient") == 1
    latency = {"channel": "email", "priority": "transactional"}
    assert metric(text, "txmsg_trigger_to_sent_seconds_count", **latency) == 1
    assert 0 < metric(text, "txmsg_trigger_to_sent_seconds_sum", **latency) < 30
    queued = {"lane": "transactional", "status": "paused"}
    assert metric(text, "txmsg_queue_depth", **queued) == 1
    assert metric(text, "txmsg_write_batch_size_count") >= 3
    assert metric(text, "txmsg_write_commit_seconds_count") >= 3
    assert "ada@example.org" not in text and "Ada" not in text  # no personal data
    # The process's own (prometheus-client's collector, read from /proc when scraped).
    assert metric(text, "process_resident_memory_bytes") > 0
    assert metric(text, "process_open_fds") > 0

    for key in (None, await _key(admin, "trigger")):
        client = server.client(key) if key else server.client()
        assert (await client.get("/metrics")).status_code == (403 if key else 401)
        await client.aclose()


async def _key(admin: Any, role: str) -> str:
    r = await admin.post("/api/v1/keys", json={"role": role, "label": role})
    key: str = r.json()["key"]
    return key


async def test_ready_names_the_check_that_fails(db: Database) -> None:
    metrics = Metrics()
    ok, body = await readiness(Probe(db, metrics, lambda: None))  # an API process: no dispatcher
    assert (ok, body) == (True, {"status": "ready", "checks": {"database": "ok", "schema": "ok"}})
    ok, body = await readiness(Probe(db, metrics, lambda: False))
    assert not ok and body["checks"]["dispatcher"] == "not running"

    await db.write(lambda c: c.exec_driver_sql("UPDATE alembic_version SET version_num='0001'"))
    ok, body = await readiness(Probe(db, metrics, lambda: True))
    assert not ok and body["status"] == "not ready"
    assert re.fullmatch(r"at revision 0001, expected \S+", body["checks"]["schema"])


async def _reseal(server: Any, keys: str) -> None:
    """`TXMSG_SECRET_KEY=keys txmsg reseal`, run beside the server."""
    other = Database(server.settings.database_url, keyring=Keyring.load(keys, Path()))
    try:
        await other.write(reseal_all, metadata)
    finally:
        await other.dispose()


async def test_secrets_resealed_with_a_key_this_process_lacks(
    server: Any, smtp: FakeSMTPServer
) -> None:
    """A rotation out of order (reseal while a process runs with the old key alone): what
    reads a secret is a 503 that says why, and /ready says not ready until it opens again."""
    await create_channel(server.admin, smtp)
    patch = {"smtp": {"username": "shop", "password": "smtp-password"}}
    assert (await server.admin.patch("/api/v1/channel-configs/mail", json=patch)).is_success
    old = (server.settings.data_dir / "secret.key").read_text().strip()
    new = Fernet.generate_key().decode()
    await _reseal(server, f"{new},{old}")

    refused = assert_problem(await server.admin.get("/api/v1/channel-configs/mail"), 503)
    assert refused["detail"].startswith(
        "a stored secret cannot be opened with this process's TXMSG_SECRET_KEY: "
    )
    async with server.client() as anyone:
        ready = await anyone.get("/ready")
        assert ready.status_code == 503, ready.text
        assert ready.json()["status"] == "not ready"
        assert "cannot be opened with this process's" in ready.json()["checks"]["secrets"]

        await _reseal(server, f"{old},{new}")  # sealed with this process's key again
        assert (await anyone.get("/ready")).status_code == 200
    assert (await server.admin.get("/api/v1/channel-configs/mail")).status_code == 200


async def test_ready_says_the_database_is_unreachable() -> None:
    unreachable = Database("postgresql://nobody@127.0.0.1:1/none")
    try:
        ok, body = await readiness(Probe(unreachable, Metrics(), lambda: None))
    finally:
        await unreachable.dispose()
    assert not ok
    assert body["checks"]["database"].startswith("unreachable (")
    assert body["checks"]["schema"] == "unknown"


async def test_first_run_errors_say_what_to_do(server: Any, smtp: FakeSMTPServer) -> None:
    admin = server.admin
    await create_channel(admin, smtp)
    await create_event(admin, "welcome")
    r = await admin.post("/api/v1/event-configs/EVTwelcome/publish")
    assert r.status_code == 200, r.text

    missing_prefix = assert_problem(await admin.post("/rest/mc/welcome", json={}), 404)
    assert "did you mean 'EVTwelcome'?" in missing_prefix["detail"]
    other = assert_problem(await admin.post("/rest/mc/EVTnone", json={}), 404)
    assert other["detail"] == "no published event 'EVTnone' (unknown, draft or unpublished)"

    body = {"email": "ada@example.org", "ctx": {"firstName": "Ada"}}
    waiting = await trigger(admin, "EVTwelcome", body)  # the message is not published yet
    assert waiting["status"] == "paused"
    assert waiting["reason"].startswith("the event's message has no published version yet")
    await admin.post("/api/v1/event-configs/EVTwelcome/pause")
    paused = await trigger(admin, "EVTwelcome", body)
    assert paused["reason"].startswith("the event configuration is paused")

    imports = "/api/v1/profiles:import"
    ndjson = {"content-type": "application/x-ndjson"}
    empty = assert_problem(await admin.post(imports, content=b"", headers=ndjson), 400, "body")
    assert "is empty" in empty["errors"][0]["detail"]
    line = b'{"id": "c-1", "email": "grace@example.org"}\n'
    answer = (await admin.post(imports, content=line, headers=ndjson)).json()
    hint = 'is required: name the field "profile_id", not "id"'
    assert answer["rejections"] == [{"line": 1, "field": "profile_id", "detail": hint}]
