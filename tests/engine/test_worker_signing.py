"""DKIM signing in the render workers, and the workers' line protocol (txmsg.sandbox)."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator

import pytest

from dkim_support import ed25519_pem, rsa_pem, verify
from txmsg.core.dkim import DkimSettings, dns_records, load_key
from txmsg.core.mime import Sender, build_email
from txmsg.core.render_limits import RenderLimits
from txmsg.core.templates import MessageSource, TemplateProblems
from txmsg.core.timeutil import utcnow
from txmsg.sandbox.pool import Renderer, SigningFailed
from txmsg.sandbox.worker import MAX_CACHED, MAX_SIGNERS, Worker, decode, encode


@pytest.fixture
async def renderer() -> AsyncIterator[Renderer]:
    renderer = Renderer(RenderLimits(workers=1))
    yield renderer
    await asyncio.to_thread(renderer.close)


def _settings(pem: str) -> DkimSettings:
    loaded = load_key(pem)
    return DkimSettings("example.com", "s1", loaded.algorithm, loaded.signing_key)


def _records(settings: DkimSettings) -> dict[str, str]:
    dkim = {"domain": "example.com", "selector": "s1", "algorithm": settings.algorithm}
    record = dns_records("shop@example.com", None, dkim, settings.private_key.decode())["dkim"]
    return {record["name"]: record["value"]}


def _email(n: int) -> bytes:
    sender = Sender.build("shop@example.com", "Shop", None)
    text = f"Your order n°{n} is on its way."
    return build_email(
        sender, "ada@example.org", "Ordre n°1 ✓", text, f"<p>{text}</p>",
        message_id=f"m{n}", date=utcnow(),
    )  # fmt: skip


@pytest.mark.parametrize("pem", [rsa_pem(), ed25519_pem()], ids=["rsa", "ed25519"])
async def test_workers_sign_what_dkimpy_verifies(renderer: Renderer, pem: str) -> None:
    settings = _settings(pem)
    messages = [_email(n) for n in range(6)]
    headers = await asyncio.gather(*(renderer.sign(settings, m) for m in messages))
    for header, message in zip(headers, messages, strict=True):
        assert header.startswith(b"DKIM-Signature: ") and header.endswith(b"\r\n")
        assert verify(header + message, _records(settings))
        assert not verify(
            header + message.replace(b"on its way", b"on its w4y"), _records(settings)
        )
    # Renders and signings share the workers.
    out = await renderer.render(MessageSource({"subject": "Hi {{ ctx.n }}"}), {"ctx": {"n": 1}})
    assert out == {"subject": "Hi 1"}


async def test_a_key_that_cannot_sign_fails_permanently_without_showing_it(
    renderer: Renderer,
) -> None:
    good = _settings(rsa_pem())
    secret = base64.b64encode(b"not a key at all, but secret").decode()
    bad = DkimSettings("example.com", "s1", "rsa-sha256", secret.encode())
    with pytest.raises(SigningFailed) as caught:
        await renderer.sign(bad, _email(1))
    assert caught.value.permanent
    assert "DKIM" in caught.value.reason and secret not in caught.value.reason
    assert secret not in repr(caught.value) and secret not in repr(bad)
    # The worker goes on signing with other keys.
    message = _email(2)
    assert verify(await renderer.sign(good, message) + message, _records(good))


def test_a_key_crosses_to_a_worker_once() -> None:
    worker = Worker(2.0, 1 << 20, 1 << 29)
    settings = _settings(ed25519_pem())
    key = [settings.algorithm, settings.domain, settings.selector, settings.private_key.decode()]
    message = _email(3).decode("latin-1")
    unknown = worker.handle({"sign": "f1", "dkim": None, "message": message})
    assert unknown["problems"][0][2] == "unknown DKIM key" and unknown["permanent"]
    first = worker.handle({"sign": "f1", "dkim": key, "message": message})
    again = worker.handle({"sign": "f1", "dkim": None, "message": message})
    assert "signature" in first and "signature" in again


def test_lines_orjson_cannot_encode_go_exactly_through_json() -> None:
    for value in (
        {"variables": {"n": 10**30, "s": "\ud800 lone", "f": 0.1}},
        {"variables": {"n": 2**63 - 1, "s": "plain é"}},
    ):
        line = encode(value)
        assert line.endswith(b"\n") and line.count(b"\n") == 1
        back = decode(line[:-1])
        assert back == value and type(back["variables"]["n"]) is int


async def test_big_integers_render_exactly(renderer: Renderer) -> None:
    message = MessageSource({"subject": "{{ ctx.n }} {{ ctx.s }}"})
    out = await renderer.render(message, {"ctx": {"n": 123456789012345678901234567890, "s": "é"}})
    assert out == {"subject": "123456789012345678901234567890 é"}


async def test_keys_and_messages_past_the_workers_caches_are_sent_again(
    renderer: Renderer,
) -> None:
    # A worker forgets its cache when it is full; the pool must send what it forgot again.
    keys = [_settings(ed25519_pem()) for _ in range(MAX_SIGNERS + 5)]
    message = _email(4)
    for settings in [*keys, *keys[:5]]:
        header = await renderer.sign(settings, message)
        assert verify(header + message, _records(settings))
    sources = [MessageSource({"subject": f"{n} {{{{ ctx.n }}}}"}) for n in range(MAX_CACHED + 3)]
    for n, source in enumerate([*sources, *sources[:3]]):
        out = await renderer.render(source, {"ctx": {"n": "x"}})
        assert out == {"subject": f"{n % len(sources)} x"}


async def test_a_message_whose_compiling_was_stopped_is_sent_again() -> None:
    # A compile stopped by the timer leaves nothing in the worker's cache: the next render of
    # the same message must carry its sources again, not answer "unknown message".
    renderer = Renderer(RenderLimits(workers=1, timeout_seconds=0.05))
    try:
        slow = MessageSource({"subject": "{{ ctx.n }}" * 23_000})
        reasons = []
        for _ in range(2):
            try:
                await renderer.render(slow, {"ctx": {"n": 1}})
            except TemplateProblems as exc:
                reasons.append(exc.problems[0].reason)
        assert len(reasons) == 2
        assert all("longer than" in reason for reason in reasons), reasons
    finally:
        await asyncio.to_thread(renderer.close)
