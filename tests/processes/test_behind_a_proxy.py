"""`txmsg serve` behind a reverse proxy: the forwarded headers of a trusted proxy (uvicorn's
FORWARDED_ALLOW_IPS, loopback by default) give the client's address and scheme, so console
cookies are `Secure` behind TLS and wrong keys count against the client, not the proxy."""

from __future__ import annotations

from pathlib import Path

import httpx

from process_support import Txmsg

HTTPS = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.7"}


async def _cookies(client: httpx.AsyncClient) -> str:
    page = await client.get("/console", headers=HTTPS)
    assert page.status_code == 200, page.text
    return "; ".join(page.headers.get_list("set-cookie"))


async def test_a_trusted_proxy_s_https_makes_secure_cookies(
    database_url: str, data_dir: Path, tmp_path: Path
) -> None:
    trusted = Txmsg(["serve", "--port", "{port}"], database_url, data_dir, tmp_path / "a.log")
    async with trusted.running() as client:
        assert "Secure" in await _cookies(client)
    elsewhere = Txmsg(
        ["serve", "--port", "{port}"],
        database_url,
        data_dir,
        tmp_path / "b.log",
        FORWARDED_ALLOW_IPS="192.0.2.1",  # the proxy is another host: loopback is not it
    )
    async with elsewhere.running() as client:
        assert "Secure" not in await _cookies(client)
