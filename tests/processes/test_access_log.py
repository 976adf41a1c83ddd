"""`serve --access-log`: request lines without the recipients' addresses and the tokens that
paths and query strings hold."""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path

import pytest
from starlette.routing import Route

import txmsg.api
from process_support import Txmsg
from txmsg.commands.access_log import SENSITIVE, TEMPLATES

ADDRESS = "alice.private@example.com"
PHONE = "+14155550123"
TOKEN = "v1.SECRETTOKENVALUE.abcdef"


@pytest.mark.parametrize("processes", ["1", "2"])
async def test_the_access_log_redacts_addresses_and_tokens(
    database_url: str, data_dir: Path, tmp_path: Path, processes: str
) -> None:
    log = tmp_path / "serve.log"
    argv = ["serve", "--port", "{port}", "--access-log", "--processes", processes]
    serve = Txmsg(argv, database_url, data_dir, log)
    async with serve.running() as client:
        await client.get(f"/api/v1/suppressions/email/{ADDRESS}")
        await client.get(f"/api/v1/suppressions/sms/{PHONE}")
        await client.get(f"/unsubscribe/{TOKEN}")
        await client.get(f"/t/c/{TOKEN}")
        await client.get("/api/v1/suppressions", params={"address": ADDRESS})
    await serve.terminate()
    text = log.read_text()
    for line in (
        '"GET /api/v1/suppressions/email/[redacted] HTTP/1.1"',
        '"GET /api/v1/suppressions/sms/[redacted] HTTP/1.1"',
        '"GET /unsubscribe/[redacted] HTTP/1.1"',
        '"GET /t/c/[redacted] HTTP/1.1"',
        '"GET /api/v1/suppressions?address=[redacted] HTTP/1.1"',
        '"GET /health HTTP/1.1" 200',  # what holds none is logged as it is
    ):
        assert line in text, text
    for secret in ("alice.private", "example.com", "4155550123", "SECRETTOKENVALUE"):
        assert secret not in text, text


def test_every_route_naming_a_recipient_or_token_is_redacted() -> None:
    """A new route with an address, PKey, profile id or token in its path needs its template
    in txmsg.commands.access_log.TEMPLATES."""
    sensitive = set()
    for module in pkgutil.iter_modules(txmsg.api.__path__):
        routes = getattr(importlib.import_module(f"txmsg.api.{module.name}"), "routes", None)
        for route in routes if isinstance(routes, list) else []:
            if isinstance(route, Route) and SENSITIVE & route.param_convertors.keys():
                sensitive.add(route.path)
    assert "/api/v1/suppressions/{channel}/{address}" in sensitive  # found as it is named
    assert sensitive == set(TEMPLATES)
