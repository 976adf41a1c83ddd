"""SMTPPool against the fake SMTP server (and two scripted misbehaving servers)."""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import UTC, datetime

import pytest
import trustme

from txmsg.channels.smtp import SessionRefused, SMTPPool, SMTPSettings, probe
from txmsg.channels.smtp_session import wire_body
from txmsg.core.delivery import (
    NotAttempted,
    PermanentSendError,
    SendWithdrawn,
    TransientSendError,
)
from txmsg.core.lanes import SEND_WITHDRAWN
from txmsg.core.mime import Sender, build_email
from txmsg.testing import FakeSMTPServer

FROM = "shop@example.com"
TO = "ann@example.com"


def message(subject: str = "Your order") -> bytes:
    return build_email(
        Sender.build(FROM, "Shop", None),
        TO,
        subject,
        "Hello Ann",
        "<p>Hello Ann</p>",
        message_id="m-1",
        date=datetime(2024, 5, 1, tzinfo=UTC),
    )


@pytest.fixture(params=[True, False], ids=["pipelined", "one-by-one"])
def pipelining(request: pytest.FixtureRequest) -> bool:
    """Every transaction test runs against a server with and without PIPELINING (RFC 2920)."""
    return bool(request.param)


@asynccontextmanager
async def pool_for(server: FakeSMTPServer, **settings: object) -> AsyncIterator[SMTPPool]:
    pool = SMTPPool(SMTPSettings(host=server.host, port=server.port, **settings))  # type: ignore[arg-type]
    try:
        yield pool
    finally:
        await pool.close()


async def assert_pool_still_sends(pool: SMTPPool, server: FakeSMTPServer, subject: str) -> None:
    reply = await pool.send(FROM, [TO], message(subject))
    assert reply.startswith("250 ")
    assert server.messages[-1].subject == subject
    assert server.messages[-1].mail_from == FROM


async def test_send_returns_the_final_reply_and_delivers(pipelining: bool) -> None:
    async with FakeSMTPServer(pipelining=pipelining) as server, pool_for(server) as pool:
        raw = message("hello")
        reply = await pool.send(FROM, [TO, "bob@example.com"], raw)
        [received] = await server.wait_for(1)
    assert reply == "250 2.0.0 OK queued as fake-1"
    assert received.mail_from == FROM
    assert received.rcpt_tos == [TO, "bob@example.com"]
    assert received.data == raw


async def test_sequential_sends_reuse_one_connection(pipelining: bool) -> None:
    async with (
        FakeSMTPServer(pipelining=pipelining) as server,
        pool_for(server, pool_size=4) as pool,
    ):
        for i in range(5):
            await pool.send(FROM, [TO], message(f"m{i}"))
        assert len(server.messages) == 5
        assert server.connections_opened == 1


async def test_concurrent_sends_share_at_most_pool_size_connections(pipelining: bool) -> None:
    async with (
        FakeSMTPServer(pipelining=pipelining) as server,
        pool_for(server, pool_size=2) as pool,
    ):
        replies = await asyncio.gather(
            *(pool.send(FROM, [TO], message(f"m{i}")) for i in range(30))
        )
        received = await server.wait_for(30)
        assert all(reply.startswith("250 ") for reply in replies)
        assert sorted(m.subject or "" for m in received) == sorted(f"m{i}" for i in range(30))
        assert server.connections_opened == 2  # both used in parallel, never a third


async def test_a_send_whose_lease_lapsed_while_it_waited_is_withdrawn() -> None:
    """The lease is asked once the connection is free, not before the wait: a send queued
    behind a slow one may have lost its event to another claim meanwhile."""
    lapsed = {"first": False, "second": False}

    async def send(name: str) -> str:
        SEND_WITHDRAWN.set(lambda: lapsed[name])  # this task's own context
        return await pool.send(FROM, [TO], message(name))

    async with FakeSMTPServer(delay=0.3) as server, pool_for(server, pool_size=1) as pool:
        first = asyncio.create_task(send("first"))
        await asyncio.sleep(0.05)
        second = asyncio.create_task(send("second"))
        await asyncio.sleep(0.05)
        lapsed["second"] = True  # while it waits for the one connection
        assert (await first).startswith("250 ")
        with pytest.raises(SendWithdrawn):
            await second
        assert [m.subject for m in server.messages] == ["first"]
        await assert_pool_still_sends(pool, server, "after")  # its slot was given back


@pytest.mark.parametrize("stage", ["MAIL", "RCPT", "DATA"])
async def test_4xx_is_transient_and_the_connection_is_kept(stage: str, pipelining: bool) -> None:
    async with FakeSMTPServer(pipelining=pipelining) as server, pool_for(server) as pool:
        await pool.send(FROM, [TO], message("warm-up"))
        server.fail_next(451, "4.3.0 try later", stage=stage)
        with pytest.raises(TransientSendError) as caught:
            await pool.send(FROM, [TO], message("rejected"))
        assert caught.value.reason == "451 4.3.0 try later"
        assert caught.value.fault is None  # may be the recipient's: not the relay's failure
        await assert_pool_still_sends(pool, server, "after 451")
        assert server.connections_opened == 1
        assert [m.subject for m in server.messages] == ["warm-up", "after 451"]


@pytest.mark.parametrize("stage", ["MAIL", "RCPT", "DATA"])
async def test_5xx_is_permanent_and_the_connection_is_kept(stage: str, pipelining: bool) -> None:
    async with FakeSMTPServer(pipelining=pipelining) as server, pool_for(server) as pool:
        server.fail_next(550, "5.1.1 mailbox unavailable", stage=stage)
        with pytest.raises(PermanentSendError) as caught:
            await pool.send(FROM, [TO], message("rejected"))
        assert caught.value.reason == "550 5.1.1 mailbox unavailable"
        assert caught.value.fault is None
        # A half-open envelope would make the next MAIL fail ("503 nested MAIL command").
        await assert_pool_still_sends(pool, server, "after 550")
        assert server.connections_opened == 1


@pytest.mark.parametrize("stage", ["MAIL", "RCPT", "DATA"])
async def test_421_discards_the_connection_and_the_next_send_reconnects(
    stage: str, pipelining: bool
) -> None:
    async with FakeSMTPServer(pipelining=pipelining) as server, pool_for(server) as pool:
        await pool.send(FROM, [TO], message("warm-up"))
        server.fail_next(421, "4.3.2 closing", stage=stage)
        with pytest.raises(TransientSendError) as caught:
            await pool.send(FROM, [TO], message("rejected"))
        assert caught.value.reason.startswith("421 4.3.2 closing")
        assert caught.value.fault == "4xx"  # the relay closing: its failure
        await assert_pool_still_sends(pool, server, "after 421")
        assert server.connections_opened == 2


async def test_connection_closed_while_idle_is_replaced(pipelining: bool) -> None:
    async with FakeSMTPServer(pipelining=pipelining) as server, pool_for(server) as pool:
        await pool.send(FROM, [TO], message("before"))
        await server.stop()  # hangs up the pooled connection
        await asyncio.sleep(0.05)
        await server.start()  # same port
        await assert_pool_still_sends(pool, server, "after restart")
        assert server.connections_opened == 1  # counted since the restart


async def test_connection_refused_is_transient() -> None:
    with socket.socket() as sock:  # a port nobody listens on once this socket is closed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    pool = SMTPPool(SMTPSettings(host="127.0.0.1", port=port, timeout=2))
    with pytest.raises(TransientSendError, match="SMTP connection failed") as caught:
        await pool.send(FROM, [TO], message())
    assert caught.value.fault == "connect"
    await pool.close()


async def test_auth_success(pipelining: bool) -> None:
    async with (
        FakeSMTPServer(pipelining=pipelining, auth=("mailer", "s3cret")) as server,
        pool_for(server, username="mailer", password="s3cret") as pool,
    ):
        await assert_pool_still_sends(pool, server, "authenticated")


async def test_auth_failure_is_the_relays_and_never_shows_the_password(pipelining: bool) -> None:
    """A 535 at login is about the configuration's password, not the recipient: transient
    (retried, and the next relay tried) even though it is a 5xx."""
    async with (
        FakeSMTPServer(pipelining=pipelining, auth=("mailer", "s3cret")) as server,
        pool_for(server, username="mailer", password="wr0ng-Passw0rd") as pool,
    ):
        with pytest.raises(TransientSendError) as caught:
            await pool.send(FROM, [TO], message())
        assert caught.value.reason.startswith("535 ")
        assert caught.value.fault == "auth"
        for text in (caught.value.reason, str(caught.value), repr(caught.value.__cause__)):
            assert "wr0ng-Passw0rd" not in text
        assert server.messages == []


def test_settings_are_validated_and_repr_hides_the_password() -> None:
    with pytest.raises(ValueError, match="tls"):
        SMTPSettings(host="mx", tls="ssl")
    with pytest.raises(ValueError, match="pool_size"):
        SMTPSettings(host="mx", pool_size=0)
    settings = SMTPSettings(host="mx", username="u", password="hunter2-secret")
    assert "hunter2-secret" not in repr(settings)


@pytest.mark.parametrize(
    ("envelope_from", "recipients"),
    [
        (FROM, []),
        (FROM, ["ann@example.com\r\nRCPT TO:<x@y>"]),
        (FROM, ["Ann <ann@example.com>"]),
        ("shop@example.com\r\nRSET", [TO]),
        ("", [TO]),
    ],
)
async def test_invalid_envelope_is_permanent_and_nothing_is_sent(
    envelope_from: str, recipients: list[str], pipelining: bool
) -> None:
    async with FakeSMTPServer(pipelining=pipelining) as server, pool_for(server) as pool:
        with pytest.raises(PermanentSendError):
            await pool.send(envelope_from, recipients, message())
        assert server.messages == []
        await assert_pool_still_sends(pool, server, "after bad input")


async def test_send_after_close_is_transient(pipelining: bool) -> None:
    async with FakeSMTPServer(pipelining=pipelining) as server:
        async with pool_for(server) as pool:
            await pool.send(FROM, [TO], message())
        with pytest.raises(TransientSendError, match="closed"):
            await pool.send(FROM, [TO], message())


# --- scripted servers for what the fake does not do: stalling --------------------------------

Script = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@asynccontextmanager
async def scripted_server(script: Script) -> AsyncIterator[tuple[int, list[int]]]:
    """A loopback server running `script` per connection; yields (port, [connections])."""
    connections: list[int] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(1)
        try:
            await script(reader, writer)
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1], connections
    finally:
        server.close()
        await server.wait_closed()


async def test_timeout_waiting_for_the_greeting_is_transient() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(5)

    async with scripted_server(silent) as (port, _):
        pool = SMTPPool(SMTPSettings(host="127.0.0.1", port=port, timeout=0.2))
        with pytest.raises(TransientSendError, match="SMTP timeout") as caught:
            await pool.send(FROM, [TO], message())
        assert caught.value.fault == "timeout"
        await pool.close()


async def test_timeout_mid_transaction_discards_the_connection() -> None:
    stall = asyncio.Event()

    async def server(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 scripted\r\n")
        in_data = False
        while line := await reader.readline():
            if in_data:
                if line == b".\r\n":
                    in_data = False
                    if not stall.is_set():
                        stall.set()
                        await asyncio.sleep(5)  # never answers the end of this message
                    writer.write(b"250 queued\r\n")
                continue
            verb = line[:4].upper()
            if verb == b"EHLO":
                writer.write(b"250 scripted\r\n")
            elif verb == b"DATA":
                in_data = True
                writer.write(b"354 go ahead\r\n")
            elif verb == b"QUIT":
                writer.write(b"221 bye\r\n")
                break
            else:
                writer.write(b"250 OK\r\n")

    async with scripted_server(server) as (port, connections):
        pool = SMTPPool(SMTPSettings(host="127.0.0.1", port=port, timeout=0.3))
        with pytest.raises(TransientSendError, match="SMTP timeout"):
            await pool.send(FROM, [TO], message())
        # The stalled connection's state is unknown: the pool must not reuse it.
        assert await pool.send(FROM, [TO], message()) == "250 queued"
        assert len(connections) == 2
        await pool.close()


def recording_server(
    pipelining: bool,
    chunks: list[bytes],
    rcpt_code: bytes = b"250",
    *,
    rcpt: list[bytes] | None = None,
    data: bytes | None = None,
    final: bytes = b"250 2.0.0 queued",
    hang_up_after_rcpt: int | None = None,
    after_final: bytes = b"",
    byte_by_byte: bool = False,
) -> Script:
    """A scripted server; records each read (what arrived together).

    rcpt: the replies to a transaction's successive RCPTs (default: `rcpt_code` for all);
    data: the reply to DATA (default 354 if a recipient was accepted, else 554);
    hang_up_after_rcpt: close the connection after answering that many RCPTs;
    after_final: sent after the reply to the message (a stray reply);
    byte_by_byte: every reply split into one-byte writes.
    """

    async def server(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        async def reply(text: bytes) -> None:
            if byte_by_byte:
                for i in range(len(text)):
                    writer.write(text[i : i + 1])
                    await writer.drain()
            else:
                writer.write(text)

        await reply(b"220 scripted\r\n")
        in_data = False
        rcpts: list[bytes] = []
        while True:
            chunk = await reader.read(65536)
            if not chunk:
                break
            chunks.append(chunk)
            replies = b""
            for line in chunk.splitlines(keepends=True):
                if in_data:
                    in_data = line != b".\r\n"
                    if not in_data:
                        replies += final + b"\r\n" + after_final
                    continue
                verb = line[:4].upper()
                if verb == b"EHLO":
                    extra = b"250-PIPELINING\r\n" if pipelining else b""
                    replies += b"250-scripted\r\n" + extra + b"250 HELP\r\n"
                elif verb == b"MAIL":
                    rcpts = []
                    replies += b"250 OK\r\n"
                elif verb == b"RCPT":
                    answer = (rcpt or [])[len(rcpts)] if rcpt else rcpt_code + b" rcpt"
                    rcpts.append(answer)
                    replies += answer + b"\r\n"
                    if hang_up_after_rcpt == len(rcpts):
                        await reply(replies)
                        return
                elif verb == b"DATA":
                    accepted = any(r.startswith(b"2") for r in rcpts)
                    answer = data or (b"354 go ahead" if accepted else b"554 no valid recipients")
                    in_data = answer.startswith(b"354")
                    replies += answer + b"\r\n"
                elif verb == b"QUIT":
                    replies += b"221 bye\r\n"
                else:
                    replies += b"250 OK\r\n"
            await reply(replies)

    return server


@asynccontextmanager
async def scripted_pool(
    script: Script, **settings: object
) -> AsyncIterator[tuple[SMTPPool, list[int]]]:
    async with scripted_server(script) as (port, connections):
        pool = SMTPPool(SMTPSettings(host="127.0.0.1", port=port, **settings))  # type: ignore[arg-type]
        try:
            yield pool, connections
        finally:
            await pool.close()


async def test_a_pipelining_server_gets_the_envelope_in_one_write() -> None:
    chunks: list[bytes] = []
    async with scripted_server(recording_server(True, chunks)) as (port, _):
        pool = SMTPPool(SMTPSettings(host="127.0.0.1", port=port))
        assert await pool.send(FROM, [TO, "bob@example.com"], message()) == "250 2.0.0 queued"
        await pool.close()
    envelope = b"MAIL FROM:<shop@example.com>\r\nRCPT TO:<ann@example.com>\r\n"
    envelope += b"RCPT TO:<bob@example.com>\r\nDATA\r\n"
    assert envelope in chunks


async def test_a_server_without_pipelining_gets_one_command_per_reply() -> None:
    chunks: list[bytes] = []
    async with scripted_server(recording_server(False, chunks)) as (port, _):
        pool = SMTPPool(SMTPSettings(host="127.0.0.1", port=port))
        assert await pool.send(FROM, [TO, "bob@example.com"], message()) == "250 2.0.0 queued"
        await pool.close()
    commands = [c for c in chunks if not c.startswith((b"EHLO", b"QUIT"))]
    assert commands[:4] == [
        b"MAIL FROM:<shop@example.com>\r\n",
        b"RCPT TO:<ann@example.com>\r\n",
        b"RCPT TO:<bob@example.com>\r\n",
        b"DATA\r\n",
    ]


@pytest.mark.parametrize("pipelined", [True, False], ids=["pipelined", "one-by-one"])
async def test_every_recipient_refused_sends_no_message(pipelined: bool) -> None:
    chunks: list[bytes] = []
    script = recording_server(pipelined, chunks, rcpt_code=b"550")
    async with scripted_server(script) as (port, connections):
        pool = SMTPPool(SMTPSettings(host="127.0.0.1", port=port))
        with pytest.raises(PermanentSendError, match=r"^550 rcpt"):
            await pool.send(FROM, [TO], message())
        with pytest.raises(PermanentSendError, match=r"^550 rcpt"):
            await pool.send(FROM, [TO], message())
        await pool.close()
    assert len(connections) == 1  # a refusal leaves the session usable (after RSET)
    assert not any(b"Subject:" in c for c in chunks)
    assert b"RSET\r\n" in chunks


async def test_message_lines_starting_with_a_dot_arrive_intact(pipelining: bool) -> None:
    raw = build_email(
        Sender.build(FROM, "Shop", None),
        TO,
        "dots",
        ".leading dot\n..two dots\n.\nend",
        "<p>x</p>",
        message_id="m-2",
        date=datetime(2024, 5, 1, tzinfo=UTC),
    )
    async with FakeSMTPServer(pipelining=pipelining) as server, pool_for(server) as pool:
        await pool.send(FROM, [TO], raw)
        [received] = await server.wait_for(1)
    assert received.data == raw
    assert received.text == ".leading dot\n..two dots\n.\nend"


def test_wire_body_is_crlf_dot_stuffed_and_terminated() -> None:
    assert wire_body(b".a\r\nb\r\n.c") == b"..a\r\nb\r\n..c\r\n.\r\n"
    assert wire_body(b"a\nb\r.c\r\n") == b"a\r\nb\r\n..c\r\n.\r\n"
    assert wire_body(b"plain\r\n") == b"plain\r\n.\r\n"


# --- TLS: sessions adopted from aiosmtplib after STARTTLS or on an implicit-TLS port ----------


@pytest.fixture(scope="module")
def server_tls() -> ssl.SSLContext:
    """A server context with a certificate from a throwaway CA the client does not trust."""
    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    return context


@pytest.mark.parametrize("mode", ["starttls", "tls"])
async def test_sends_over_tls(server_tls: ssl.SSLContext, pipelining: bool, mode: str) -> None:
    fake = FakeSMTPServer(pipelining=pipelining, tls=server_tls, implicit_tls=mode == "tls")
    async with fake as server, pool_for(server, tls=mode, validate_certs=False) as pool:
        for subject in ("first", "second"):  # the second reuses the TLS session
            await assert_pool_still_sends(pool, server, subject)
        with pytest.raises(PermanentSendError, match=r"^550 "):
            server.fail_next(550, "5.1.1 no such user", stage="RCPT")
            await pool.send(FROM, [TO], message())
        await assert_pool_still_sends(pool, server, "after a refusal")
    assert server.connections_opened == 1


@pytest.mark.parametrize("mode", ["starttls", "tls"])
async def test_an_untrusted_certificate_is_refused(server_tls: ssl.SSLContext, mode: str) -> None:
    fake = FakeSMTPServer(tls=server_tls, implicit_tls=mode == "tls")
    async with fake as server, pool_for(server, tls=mode) as pool:
        with pytest.raises(TransientSendError, match=r"(?i)certificate") as caught:
            await pool.send(FROM, [TO], message())
        assert caught.value.fault == "tls"
    assert server.messages == []


async def test_starttls_not_offered_is_a_tls_failure_of_the_relay() -> None:
    async with FakeSMTPServer() as server, pool_for(server, tls="starttls") as pool:
        with pytest.raises(TransientSendError, match="STARTTLS") as caught:
            await pool.send(FROM, [TO], message())
        assert caught.value.fault == "tls"
    assert server.messages == []


async def test_a_probe_logs_in_and_quits_without_sending(server_tls: ssl.SSLContext) -> None:
    async with FakeSMTPServer(auth=("mailer", "s3cret"), tls=server_tls) as server:
        settings = SMTPSettings(
            host=server.host,
            port=server.port,
            tls="starttls",
            validate_certs=False,
            username="mailer",
            password="s3cret",
        )
        assert await probe(settings, 2.0) == "EHLO, STARTTLS, AUTH accepted"
        with pytest.raises(SessionRefused) as caught:
            await probe(replace(settings, password="wr0ng-Passw0rd"), 2.0)
        assert (caught.value.stage, caught.value.fault) == ("AUTH", "auth")
        assert caught.value.reason.startswith("535 ") and "wr0ng" not in caught.value.reason
        with pytest.raises(SessionRefused) as caught:
            await probe(replace(settings, validate_certs=True), 2.0)
        assert (caught.value.stage, caught.value.fault) == ("STARTTLS", "tls")
    assert server.messages == []


TWO = [TO, "bob@example.com"]


@pytest.mark.parametrize("pipelined", [True, False], ids=["pipelined", "one-by-one"])
async def test_multi_line_replies_split_into_single_bytes_pair_up(pipelined: bool) -> None:
    chunks: list[bytes] = []
    script = recording_server(
        pipelined,
        chunks,
        rcpt=[b"250-2.1.5 first line\r\n250 2.1.5 recipient ok", b"250 2.1.5 ok"],
        final=b"250-2.0.0 queued\r\n250 2.0.0 as 42",
        byte_by_byte=True,
    )
    async with scripted_pool(script) as (pool, connections):
        assert await pool.send(FROM, TWO, message()) == "250 2.0.0 queued 2.0.0 as 42"
        assert await pool.send(FROM, TWO, message()) == "250 2.0.0 queued 2.0.0 as 42"
    assert len(connections) == 1


@pytest.mark.parametrize("pipelined", [True, False], ids=["pipelined", "one-by-one"])
async def test_some_recipients_refused_still_sends_the_message(pipelined: bool) -> None:
    chunks: list[bytes] = []
    script = recording_server(pipelined, chunks, rcpt=[b"550 5.1.1 unknown", b"250 ok"])
    async with scripted_pool(script) as (pool, _):
        assert await pool.send(FROM, TWO, message("partly")) == "250 2.0.0 queued"
    assert any(b"Subject: partly" in c for c in chunks)


@pytest.mark.parametrize("pipelined", [True, False], ids=["pipelined", "one-by-one"])
async def test_every_recipient_refused_with_one_temporary_refusal_is_transient(
    pipelined: bool,
) -> None:
    script = recording_server(pipelined, [], rcpt=[b"550 5.1.1 unknown", b"451 4.3.0 later"])
    async with scripted_pool(script) as (pool, _):
        with pytest.raises(TransientSendError, match=r"^451 4\.3\.0 later"):
            await pool.send(FROM, TWO, message())


@pytest.mark.parametrize("pipelined", [True, False], ids=["pipelined", "one-by-one"])
async def test_a_hang_up_after_a_refused_recipient_is_transient(pipelined: bool) -> None:
    # The server answered one of two RCPTs (a 550) and closed: the other never got a verdict.
    script = recording_server(pipelined, [], rcpt=[b"550 5.1.1 unknown"], hang_up_after_rcpt=1)
    async with scripted_pool(script) as (pool, _):
        with pytest.raises(TransientSendError, match="closed the connection"):
            await pool.send(FROM, TWO, message())


async def test_a_354_after_a_failed_envelope_ends_an_empty_message() -> None:
    chunks: list[bytes] = []
    script = recording_server(True, chunks, rcpt_code=b"550", data=b"354 go ahead anyway")
    async with scripted_pool(script) as (pool, connections):
        with pytest.raises(PermanentSendError, match=r"^550 rcpt"):
            await pool.send(FROM, [TO], message())
        with pytest.raises(PermanentSendError, match=r"^550 rcpt"):
            await pool.send(FROM, [TO], message())
    assert chunks.count(b".\r\n") == 2  # the empty message, never the real one
    assert not any(b"Subject:" in c for c in chunks)
    assert len(connections) == 1


async def test_a_stray_reply_keeps_the_session_out_of_the_pool() -> None:
    script = recording_server(True, [], after_final=b"250 stray\r\n")
    async with scripted_pool(script) as (pool, connections):
        assert await pool.send(FROM, [TO], message()) == "250 2.0.0 queued"
        await asyncio.sleep(0.05)  # the stray reply arrives while the session is idle
        assert await pool.send(FROM, [TO], message()) == "250 2.0.0 queued"
    assert len(connections) == 2


async def test_a_non_refusal_where_a_refusal_was_due_is_not_taken_for_one() -> None:
    # A final 354 is no SMTP reply to a message: transient, and the session is not reused.
    script = recording_server(True, [], final=b"354 confused")
    async with scripted_pool(script) as (pool, connections):
        with pytest.raises(TransientSendError, match="unexpected SMTP reply 354"):
            await pool.send(FROM, [TO], message())
        with pytest.raises(TransientSendError):
            await pool.send(FROM, [TO], message())
    assert len(connections) == 2


async def test_many_recipients_answered_together_are_not_an_overlong_reply() -> None:
    recipients = [f"user{i}@example.com" for i in range(1500)]
    async with scripted_pool(recording_server(True, [])) as (pool, _):
        assert await pool.send(FROM, recipients, message()) == "250 2.0.0 queued"


@pytest.mark.parametrize("flood", [b"250 " + b"x" * 100_000, b"250-xxxx\r\n" * 10_000])
async def test_an_endless_reply_drops_the_session(flood: bytes) -> None:
    async def server(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 scripted\r\n")
        await reader.readline()
        writer.write(b"250-scripted\r\n250 PIPELINING\r\n")
        await reader.readline()  # MAIL: answered with a line, or a reply, that never ends
        writer.write(flood)
        await reader.read()

    async with scripted_pool(server, timeout=5) as (pool, _):
        with pytest.raises(TransientSendError, match="overlong reply"):
            await pool.send(FROM, [TO], message())


async def test_a_timeout_while_pipelined_discards_the_session() -> None:
    async with (
        FakeSMTPServer(pipelining=True, delay=1.0) as server,
        pool_for(server, timeout=0.2) as pool,
    ):
        with pytest.raises(TransientSendError, match="SMTP timeout"):
            await pool.send(FROM, [TO], message())
        server.delay = 0
        await assert_pool_still_sends(pool, server, "after the timeout")
        assert server.connections_opened == 2


async def test_a_send_cancelled_mid_transaction_closes_its_session(pipelining: bool) -> None:
    async with (
        FakeSMTPServer(pipelining=pipelining, delay=5.0) as server,
        pool_for(server) as pool,
    ):
        task = asyncio.create_task(pool.send(FROM, [TO], message()))
        await asyncio.sleep(0.2)  # waiting for the reply to the message
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        server.delay = 0
        await assert_pool_still_sends(pool, server, "after the cancellation")
        assert server.connections_opened == 2


async def test_closing_the_pool_says_quit() -> None:
    chunks: list[bytes] = []
    async with scripted_pool(recording_server(True, chunks)) as (pool, _):
        await pool.send(FROM, [TO], message())
    assert chunks[-1] == b"QUIT\r\n"


def test_wire_body_edge_cases() -> None:
    assert wire_body(b"") == b".\r\n"
    assert wire_body(b"a\r\n.\r\nb") == b"a\r\n..\r\nb\r\n.\r\n"
    assert wire_body(b".") == b"..\r\n.\r\n"


async def test_a_send_on_a_closed_pool_went_to_no_server() -> None:
    """A closed pool (a superseded configuration's) sends nothing: `NotAttempted`, so the
    event's retry gives its channel cap's token back."""
    async with FakeSMTPServer() as server, pool_for(server) as pool:
        await pool.close()
        with pytest.raises(NotAttempted):
            await pool.send(FROM, [TO], message())
        assert server.messages == []
