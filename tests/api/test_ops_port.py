"""The ops port's address: one port, or the first free of several (`serve --processes N`)."""

from __future__ import annotations

import logging
import sqlite3

import httpx
import pytest

from helpers import free_ports, held_port
from txmsg.api import ops_port
from txmsg.api.ops_port import OpsAddress, start_ops_port
from txmsg.api.probes import Probe
from txmsg.metrics import Metrics
from txmsg.store.clock import DatabaseClock
from txmsg.store.db import Database


async def test_it_takes_the_first_free_of_its_ports(db: Database) -> None:
    probe = Probe(db=db, metrics=Metrics(), dispatching=lambda: None)
    first = free_ports(3)
    with held_port(first):  # as another program would
        one = await start_ops_port(probe, OpsAddress("127.0.0.1", first, 3))
        two = await start_ops_port(probe, OpsAddress("127.0.0.1", first, 3))
        try:
            taken = [s.sockets[0].getsockname()[1] for s in (one, two)]
            assert taken == [first + 1, first + 2]
            async with httpx.AsyncClient() as client:
                for port in taken:
                    r = await client.get(f"http://127.0.0.1:{port}/ready")
                    assert r.status_code == 200, r.text
            # All three held: the next one fails, naming the ports it tried.
            with pytest.raises(OSError, match=rf"ops port 127\.0\.0\.1:{first}-{first + 2}"):
                await start_ops_port(probe, OpsAddress("127.0.0.1", first, 3))
            with pytest.raises(OSError, match=rf"ops port 127\.0\.0\.1:{first}:"):
                await start_ops_port(probe, OpsAddress("127.0.0.1", first))
        finally:
            for server in (one, two):
                server.close()
                await server.wait_closed()


async def test_it_logs_where_it_listens_for_one_process_too(
    db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    """`txmsg worker --health-port P` says where its probes are, as `--processes N` does."""
    probe = Probe(db=db, metrics=Metrics(), dispatching=lambda: None)
    port = free_ports(1)
    with caplog.at_level(logging.INFO, logger="txmsg.api.ops_port"):
        server = await start_ops_port(probe, OpsAddress("127.0.0.1", port))
    try:
        said = [r.getMessage() for r in caplog.records if r.name == "txmsg.api.ops_port"]
        assert said == [f"health, readiness and metrics on 127.0.0.1:{port}"]
    finally:
        server.close()
        await server.wait_closed()


class _FailingDatabase:
    """A database whose reads fail with `error` (the ops port reads nothing else of it but
    its clock, for the channel caps' current windows)."""

    def __init__(self, error: Exception) -> None:
        self.error = error
        self.clock = DatabaseClock()

    async def read(self, *_args: object) -> object:
        raise self.error


async def test_metrics_answer_when_the_database_cannot_be_read() -> None:
    """The database unavailable (SQLite's lock, PostgreSQL gone), or its read failing for
    another reason: `/metrics` still answers the process's figures, with the queue depth left
    out and `txmsg_database_up 0` (the ops port dropped the connection, with a traceback in the
    log). Every answer is an HTTP answer: a probe's own failure is a 500, not a hang-up."""
    metrics = Metrics()
    metrics.count_outcome("email", "processed", None)
    metrics.set_queue_depth([("transactional", "pending", 3)])
    port = free_ports(1)
    for error in (sqlite3.OperationalError("database is locked"), RuntimeError("a bug")):
        db = _FailingDatabase(error)
        probe = Probe(db=db, metrics=metrics, dispatching=lambda: None)  # type: ignore[arg-type]
        server = await start_ops_port(probe, OpsAddress("127.0.0.1", port, 50))
        try:
            taken = server.sockets[0].getsockname()[1]
            async with httpx.AsyncClient() as client:
                r = await client.get(f"http://127.0.0.1:{taken}/metrics")
                assert r.status_code == 200, r.text
                assert "txmsg_database_up 0.0" in r.text
                assert "txmsg_queue_depth{" not in r.text  # not last scrape's, now stale
                assert 'txmsg_sends_total{channel="email",outcome="processed"} 1.0' in r.text
                r = await client.get(f"http://127.0.0.1:{taken}/ready")
                assert r.status_code == 503, r.text
        finally:
            server.close()
            await server.wait_closed()


async def test_an_error_of_a_probe_is_answered_500(monkeypatch: pytest.MonkeyPatch) -> None:
    async def broken(_probe: Probe) -> tuple[bool, dict[str, object]]:
        raise RuntimeError("a bug in a probe")

    monkeypatch.setattr(ops_port, "readiness", broken)
    probe = Probe(db=_FailingDatabase(RuntimeError()), metrics=Metrics(), dispatching=lambda: None)  # type: ignore[arg-type]
    server = await start_ops_port(probe, OpsAddress("127.0.0.1", free_ports(1), 50))
    try:
        taken = server.sockets[0].getsockname()[1]
        async with httpx.AsyncClient() as client:
            r = await client.get(f"http://127.0.0.1:{taken}/ready")
            assert r.status_code == 500, r.text
    finally:
        server.close()
        await server.wait_closed()


async def test_a_probe_with_another_method_is_told_which_ones_work(db: Database) -> None:
    """GET and HEAD (a load balancer's check) answer; another method on a probe's path is a
    405 naming them, an unknown path a 404."""
    probe = Probe(db=db, metrics=Metrics(), dispatching=lambda: None)
    server = await start_ops_port(probe, OpsAddress("127.0.0.1", free_ports(1), 50))
    try:
        base = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        async with httpx.AsyncClient(base_url=base) as client:
            head = await client.head("/health")
            assert (head.status_code, head.content) == (200, b"")
            assert head.headers["content-length"] == str(len(b'{"status":"ok"}'))
            for method in ("POST", "PUT", "DELETE"):
                r = await client.request(method, "/ready")
                assert r.status_code == 405, (method, r.text)
                assert r.headers["allow"] == "GET, HEAD"
            assert (await client.post("/nowhere")).status_code == 404
            assert (await client.get("/health")).json() == {"status": "ok"}
    finally:
        server.close()
        await server.wait_closed()
