"""The ops port's address: one port, or the first free of several (`serve --processes N`)."""

from __future__ import annotations

import logging

import httpx
import pytest

from helpers import free_ports, held_port
from txmsg.api.ops_port import OpsAddress, start_ops_port
from txmsg.api.probes import Probe
from txmsg.metrics import Metrics
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
