"""DKIM signing and relay failover cost: messages/s, signed against unsigned, same run.

1. The engine's send path below the dispatcher: messages built by core/mime.py, sent by 256
   concurrent tasks through `SMTPPool` (8 pooled connections) into Postfix's smtp-sink, on
   uvloop; then the same signed as the engine signs them, by the render workers
   (`Renderer.sign`: the loop only hands the bytes over), with an RSA 2048 key and an Ed25519
   key; and, for comparison, signed inline on the event loop (what the engine did before).
   Every message gets its own Message-ID, so every signature is computed. A last figure sends
   unsigned through `FailoverSender` with a fallback relay (the primary up): what the breaker
   bookkeeping costs on every send.
2. With `--e2e`: `txmsg serve` delivery (queued -> sent, as bench/e2e_email.py measures it) with
   and without a DKIM key (RSA 2048) on the channel configuration.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import uvloop
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[1] / "src"))

from _common import ADMIN_KEY, LINE, engine_rates, free_port, setup_event, smtp_sink
from txmsg.channels.smtp import SMTPPool
from txmsg.core.breaker import BreakerSettings
from txmsg.core.delivery import EmailProvider
from txmsg.core.dkim import DkimSettings, load_key
from txmsg.core.dkim_signer import DkimSigner
from txmsg.core.email_config import SMTPSettings
from txmsg.core.mime import Sender, build_email
from txmsg.core.render_limits import RenderLimits
from txmsg.engine.failover import FailoverSender, Relay
from txmsg.sandbox.pool import Renderer

CONCURRENCY = 256


def _pem(key: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode("ascii")


def _settings(pem: str) -> DkimSettings:
    loaded = load_key(pem)
    return DkimSettings("example.com", "s1", loaded.algorithm, loaded.signing_key)


async def _run(
    port: int,
    count: int,
    dkim: DkimSettings | None = None,
    renderer: Renderer | None = None,
    failover: bool = False,
) -> float:
    smtp = SMTPSettings(host="127.0.0.1", port=port, pool_size=8)
    provider: EmailProvider = SMTPPool(smtp)
    if failover:
        relays: list[Relay[EmailProvider]] = [
            Relay("primary", provider),
            Relay("fallback", SMTPPool(smtp)),
        ]
        provider = FailoverSender(relays, BreakerSettings())
    inline = DkimSigner(dkim) if dkim is not None and renderer is None else None
    sender = Sender.build("shop@example.com", "Example Shop", None)
    date = datetime.now(UTC)
    text, html = (LINE + "\n") * 10, ("<p>" + LINE + "</p>\n") * 10
    queue = iter(range(count))

    async def worker() -> None:
        for n in queue:
            data = build_email(
                sender, "ada@example.org", "Hello Ada", text, html, message_id=f"m{n}", date=date
            )
            if inline is not None:
                data = inline.signature(data) + data
            elif dkim is not None and renderer is not None:
                data = await renderer.sign(dkim, data) + data
            await provider.send("shop@example.com", ["ada@example.org"], data)

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    elapsed = time.perf_counter() - start
    await provider.close()
    return count / elapsed


def _with_dkim(pem: str, smtp_port: int) -> object:
    def setup(base: str) -> str:
        key = setup_event(base, smtp_port)
        admin = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {ADMIN_KEY}"})
        dkim = {"domain": "example.com", "selector": "s1", "private_key": pem}
        admin.patch("/api/v1/channel-configs/sink", json={"dkim": dkim}).raise_for_status()
        return key

    return setup


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=5_000, help="messages per figure")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of every figure")
    parser.add_argument("--e2e", action="store_true", help="also txmsg serve, with/without DKIM")
    parser.add_argument("--seconds", type=int, default=5, help="wrk's triggering, with --e2e")
    args = parser.parse_args()
    rsa_pem = _pem(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    rsa_key = _settings(rsa_pem)
    ed_key = _settings(_pem(ed25519.Ed25519PrivateKey.generate()))
    renderer = Renderer(RenderLimits())
    port = free_port()
    figures: dict[str, list[float]] = {}
    runs = {
        "unsigned": lambda: _run(port, args.count),
        "DKIM rsa-sha256 (2048), workers": lambda: _run(port, args.count, rsa_key, renderer),
        "DKIM ed25519-sha256, workers": lambda: _run(port, args.count, ed_key, renderer),
        "DKIM rsa-sha256 (2048), inline": lambda: _run(port, args.count, rsa_key),
        "failover, 2 relays, unsigned": lambda: _run(port, args.count, failover=True),
    }
    with smtp_sink(port):
        for _ in range(args.rounds):  # interleaved: the machine's noise hits every figure
            for name, run in runs.items():
                figures.setdefault(name, []).append(uvloop.run(run()))
        renderer.close()
        if args.e2e:
            e2e: dict[str, list[float]] = {"e2e delivery, unsigned": [], "e2e delivery, DKIM": []}
            for _ in range(args.rounds):
                plain = engine_rates(lambda b: setup_event(b, port), args.seconds, backlog=True)
                signed = engine_rates(_with_dkim(rsa_pem, port), args.seconds, backlog=True)  # type: ignore[arg-type]
                e2e["e2e delivery, unsigned"].append(plain["rate"])
                e2e["e2e delivery, DKIM"].append(signed["rate"])
            figures.update(e2e)
    base = sum(figures["unsigned"]) / len(figures["unsigned"])
    e2e_base = figures.get("e2e delivery, unsigned")
    for name, rates in figures.items():
        mean = sum(rates) / len(rates)
        ref = sum(e2e_base) / len(e2e_base) if name.startswith("e2e") and e2e_base else base
        each = " ".join(f"{r:,.0f}" for r in rates)
        print(f"{name:34} {mean:9,.0f} msg/s  ratio {mean / ref:.2f}  ({each})")


if __name__ == "__main__":
    main()
