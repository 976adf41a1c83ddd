"""The ops port's address: one port, or the first free of several (`serve --processes N`)."""

from __future__ import annotations

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
