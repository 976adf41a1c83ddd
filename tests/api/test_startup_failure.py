"""A process whose start fails part way stops what had started before the error goes up: the
dispatcher's sends under way finish and their outcomes are recorded (else the events stay
leased, and a send cut off may go out twice)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from conftest import settings_for
from helpers import free_ports, held_port
from txmsg.api.ops_port import OpsAddress
from txmsg.app import create_app


async def failed_start(app: Any, match: str) -> None:
    with pytest.raises(OSError, match=match):
        async with app.router.lifespan_context(app):
            pass


async def test_an_ops_port_that_cannot_be_had_stops_the_engine_it_follows(
    database_url: str, data_dir: Path
) -> None:
    with held_port(free_ports(1)) as port:
        settings = settings_for(database_url, data_dir)
        app = create_app(settings, ops_port=OpsAddress("127.0.0.1", port))
        await failed_start(app, f"ops port 127.0.0.1:{port}")
    assert app.state.engine.dispatching is False


async def test_a_bounce_listener_port_taken_stops_the_engine_started_before_it(
    database_url: str, data_dir: Path
) -> None:
    with held_port(free_ports(1)) as port:
        app = create_app(settings_for(database_url, data_dir, bounce_listen=f"127.0.0.1:{port}"))
        await failed_start(app, "(?i)address already in use")
    assert app.state.engine.dispatching is False
