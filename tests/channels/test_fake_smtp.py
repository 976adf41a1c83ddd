"""FakeSMTPServer, driven by a real SMTP client (aiosmtplib)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from email.message import EmailMessage

import aiosmtplib
import pytest

from txmsg.core.mime import Sender, build_email
from txmsg.testing import FakeSMTPServer, ReceivedMessage, WaitTimeout

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


def client(server: FakeSMTPServer, **kwargs: object) -> aiosmtplib.SMTP:
    return aiosmtplib.SMTP(
        hostname=server.host,
        port=server.port,
        local_hostname="localhost",
        start_tls=False,
        timeout=5,
        **kwargs,  # type: ignore[arg-type]
    )


async def test_records_an_accepted_message() -> None:
    async with FakeSMTPServer() as server:
        assert server.port != 0
        raw = message("Héllo")
        async with client(server) as smtp:
            _, reply = await smtp.sendmail(FROM, [TO, "bob@example.com"], raw)
        assert reply.startswith("2.0.0 OK")
        [received] = await server.wait_for(1)
    assert isinstance(received, ReceivedMessage)
    assert received.mail_from == FROM
    assert received.rcpt_tos == [TO, "bob@example.com"]
    assert received.data == raw  # byte for byte, CRLF line endings kept
    assert received.subject == "Héllo"
    assert received.text == "Hello Ann"
    assert received.html == "<p>Hello Ann</p>"
    assert received.message["Message-ID"] == "<m-1@example.com>"


async def test_text_only_message_has_no_html() -> None:
    async with FakeSMTPServer() as server:
        await aiosmtplib.send(
            b"Subject: plain\r\n\r\nJust text\r\n",
            sender=FROM,
            recipients=[TO],
            hostname=server.host,
            port=server.port,
            local_hostname="localhost",
        )
        [received] = await server.wait_for(1)
    assert received.subject == "plain"
    assert received.text == "Just text\n"
    assert received.html is None


async def test_wait_for_waits_for_a_later_message() -> None:
    async with FakeSMTPServer() as server:
        waiter = asyncio.create_task(server.wait_for(2))
        async with client(server) as smtp:
            await smtp.sendmail(FROM, [TO], message("one"))
            await asyncio.sleep(0.01)
            assert not waiter.done()
            await smtp.sendmail(FROM, [TO], message("two"))
        received = await waiter
    assert [m.subject for m in received] == ["one", "two"]


async def test_wait_for_timeout_says_how_many_arrived() -> None:
    async with FakeSMTPServer() as server:
        async with client(server) as smtp:
            await smtp.sendmail(FROM, [TO], message())
        with pytest.raises(TimeoutError, match=r"expected 3 message.*but 1 arrived"):
            await server.wait_for(3, timeout=0.1)


async def test_clear_forgets_messages() -> None:
    async with FakeSMTPServer() as server:
        async with client(server) as smtp:
            await smtp.sendmail(FROM, [TO], message())
            await server.wait_for(1)
            server.clear()
            assert server.messages == []
            await smtp.sendmail(FROM, [TO], message("after"))
        [received] = await server.wait_for(1)
    assert received.subject == "after"


@pytest.mark.parametrize(
    ("stage", "error"),
    [
        ("MAIL", aiosmtplib.SMTPSenderRefused),
        ("RCPT", aiosmtplib.SMTPRecipientsRefused),
        ("DATA", aiosmtplib.SMTPDataError),
    ],
)
@pytest.mark.parametrize("code", [451, 550])
async def test_fail_next_rejects_one_transaction_at_stage(
    stage: str, error: type[Exception], code: int
) -> None:
    async with FakeSMTPServer() as server:
        server.fail_next(
            code, "4.0.0 try again" if code < 500 else "5.1.1 no such user", stage=stage
        )
        async with client(server) as smtp:
            with pytest.raises(error) as caught:
                await smtp.sendmail(FROM, [TO], message("rejected"))
            exc = caught.value
            if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
                exc = exc.recipients[0]
            assert isinstance(exc, aiosmtplib.SMTPResponseException)
            assert exc.code == code
            assert "try again" in exc.message or "no such user" in exc.message
            # The rule is used up: the same connection now gets through.
            await smtp.sendmail(FROM, [TO], message("accepted"))
        received = await server.wait_for(1)
        assert [m.subject for m in received] == ["accepted"]
        assert server.rejected == 1
        assert server.connections_opened == 1


async def test_refused_mail_leaves_no_transaction_behind() -> None:
    # RFC 5321 lets a client send MAIL again after a refused one, without RSET: the rule
    # covered that one attempt.
    async with FakeSMTPServer() as server, client(server) as smtp:
        server.fail_next(451, "4.3.0 later", stage="MAIL")
        with pytest.raises(aiosmtplib.SMTPSenderRefused) as caught:
            await smtp.mail(FROM)
        assert caught.value.code == 451
        assert (await smtp.mail(FROM)).code == 250
        assert (await smtp.rcpt(TO)).code == 250
        assert (await smtp.data(message("second try"))).code == 250
        assert [m.subject for m in server.messages] == ["second try"]
        assert server.rejected == 1


async def test_refused_data_ends_its_transaction_only() -> None:
    async with FakeSMTPServer() as server, client(server) as smtp:
        server.fail_next(451, "4.3.0 later", stage="DATA")
        await smtp.mail(FROM)
        await smtp.rcpt(TO)
        with pytest.raises(aiosmtplib.SMTPDataError):
            await smtp.data(message("refused"))
        await smtp.mail(FROM)  # no RSET: the refused DATA ended the transaction
        await smtp.rcpt(TO)
        assert (await smtp.data(message("accepted"))).code == 250
        assert [m.subject for m in server.messages] == ["accepted"]
        assert server.rejected == 1


async def test_rcpt_failure_rejects_every_recipient_of_the_transaction() -> None:
    async with FakeSMTPServer() as server:
        server.fail_next(550, stage="RCPT")
        async with client(server) as smtp:
            with pytest.raises(aiosmtplib.SMTPRecipientsRefused) as caught:
                await smtp.sendmail(FROM, [TO, "bob@example.com"], message())
        assert [r.code for r in caught.value.recipients] == [550, 550]
        assert server.rejected == 1
        assert server.messages == []


async def test_fail_next_count_and_fail_always_and_reset() -> None:
    async with FakeSMTPServer() as server, client(server) as smtp:
        server.fail_next(451, count=2)
        for _ in range(2):
            with pytest.raises(aiosmtplib.SMTPDataError):
                await smtp.sendmail(FROM, [TO], message())
        await smtp.sendmail(FROM, [TO], message("third"))

        server.fail_always(554, "5.7.1 policy", stage="MAIL")
        for _ in range(3):
            with pytest.raises(aiosmtplib.SMTPSenderRefused, match="policy"):
                await smtp.sendmail(FROM, [TO], message())
        server.reset_failures()
        await smtp.sendmail(FROM, [TO], message("after reset"))

        assert [m.subject for m in server.messages] == ["third", "after reset"]
        assert server.rejected == 5


async def test_invalid_failure_rules_are_refused() -> None:
    server = FakeSMTPServer()
    with pytest.raises(ValueError, match="stage"):
        server.fail_next(550, stage="EHLO")
    with pytest.raises(ValueError, match="4xx or 5xx"):
        server.fail_always(250)
    with pytest.raises(ValueError, match="count"):
        server.fail_next(451, count=0)


@pytest.mark.parametrize("stage", ["MAIL", "RCPT", "DATA"])
async def test_421_reply_closes_the_connection(stage: str) -> None:
    async with FakeSMTPServer() as server:
        server.fail_next(421, "4.3.2 shutting down", stage=stage)
        reader, writer = await asyncio.open_connection(server.host, server.port)
        try:
            assert (await reader.readline()).startswith(b"220")
            script = [b"HELO localhost", f"MAIL FROM:<{FROM}>".encode(), f"RCPT TO:<{TO}>".encode()]
            script.append(b"DATA")
            replies = []
            for command in script:
                writer.write(command + b"\r\n")
                line = await asyncio.wait_for(reader.readline(), 2)
                replies.append(line)
                if line.startswith(b"354"):
                    writer.write(b"Subject: x\r\n\r\nbody\r\n.\r\n")
                    replies.append(await asyncio.wait_for(reader.readline(), 2))
                if replies[-1].startswith(b"421"):
                    break
            assert replies[-1] == b"421 4.3.2 shutting down\r\n"
            # The server hung up: end of stream rather than a wait for more commands.
            assert await asyncio.wait_for(reader.read(), 2) == b""
        finally:
            writer.close()
        assert server.messages == []


async def test_auth_required_and_checked() -> None:
    async with FakeSMTPServer(auth=("mailer", "s3cret")) as server:
        async with client(server, username="mailer", password="s3cret") as smtp:
            await smtp.sendmail(FROM, [TO], message("authenticated"))

        with pytest.raises(aiosmtplib.SMTPAuthenticationError) as caught:
            async with client(server, username="mailer", password="wrong"):
                pass
        assert caught.value.code == 535

        async with client(server) as smtp:  # no AUTH at all
            with pytest.raises(aiosmtplib.SMTPSenderRefused) as refused:
                await smtp.sendmail(FROM, [TO], message("anonymous"))
            assert refused.value.code == 530

        assert [m.subject for m in server.messages] == ["authenticated"]


async def test_stop_hangs_up_open_connections() -> None:
    server = FakeSMTPServer()
    await server.start()
    smtp = client(server)
    await smtp.connect()
    await server.stop()
    with pytest.raises(aiosmtplib.SMTPServerDisconnected):
        await smtp.sendmail(FROM, [TO], message())
    smtp.close()


async def test_fake_smtp_fixture(fake_smtp: FakeSMTPServer) -> None:
    assert fake_smtp.port != 0
    async with client(fake_smtp) as smtp:
        await smtp.sendmail(FROM, [TO], message("from fixture"))
    [received] = await fake_smtp.wait_for(1)
    assert received.subject == "from fixture"


def test_one_fake_serves_one_event_loop_then_another() -> None:
    """A fake kept across tests (a module's), each test on a loop of its own: `wait_for`
    waits on the loop that started it, not on the first one's."""
    server = FakeSMTPServer()

    async def one_test(subject: str, total: int) -> None:
        async with server:

            async def later() -> None:
                await asyncio.sleep(0.05)  # so that wait_for really waits
                async with client(server) as smtp:
                    await smtp.sendmail(FROM, [TO], message(subject))

            sending = asyncio.ensure_future(later())
            await server.wait_for(total, timeout=5)
            await sending

    asyncio.run(one_test("first", 1))
    asyncio.run(one_test("second", 1))  # each start begins empty
    assert [m.subject for m in server.messages] == ["second"]


def test_a_fake_reused_by_another_test_starts_empty() -> None:
    """A module's fake, started by one test then by the next: the next test sees none of the
    first one's messages, counters or failure rules (a stale message would let `wait_for(1)`
    pass with nothing sent)."""
    server = FakeSMTPServer()

    async def first_test() -> None:
        async with server, client(server) as smtp:
            await smtp.sendmail(FROM, [TO], message("first"))
            server.fail_next(451, stage="MAIL")
            with pytest.raises(aiosmtplib.SMTPSenderRefused):
                await smtp.sendmail(FROM, [TO], message("refused"))
            server.fail_always(550, "5.7.1 policy")  # left set by the test
            server.drop_next()
        assert [m.subject for m in server.messages] == ["first"]  # readable after the stop
        assert server.rejected == 1

    async def next_test() -> None:
        async with server:
            assert (server.messages, server.rejected, server.connections_opened) == ([], 0, 0)
            with pytest.raises(WaitTimeout, match="but 0 arrived"):
                await server.wait_for(1, timeout=0.1)
            async with client(server) as smtp:
                await smtp.sendmail(FROM, [TO], message("second"))  # no rule left over
            [received] = await server.wait_for(1)
            assert (received.subject, server.dropped, server.rejected) == ("second", 0, 0)
        server.fail_next(451, stage="MAIL")  # set while stopped: for the next run

    async def last_test() -> None:
        async with server, client(server) as smtp:
            with pytest.raises(aiosmtplib.SMTPSenderRefused):
                await smtp.sendmail(FROM, [TO], message("refused"))
            assert server.rejected == 1

    asyncio.run(first_test())
    first = server.messages
    asyncio.run(next_test())
    asyncio.run(last_test())
    assert [m.subject for m in first] == ["first"]  # a run's list is left to whoever holds it


async def test_a_wait_that_timed_out_is_a_timeout_and_a_failed_assertion() -> None:
    async with FakeSMTPServer() as server:
        with pytest.raises(WaitTimeout) as raised:
            await server.wait_for(1, timeout=0.05)
    assert isinstance(raised.value, TimeoutError) and isinstance(raised.value, AssertionError)


async def test_smtputf8_is_offered_as_real_servers_do() -> None:
    mail = EmailMessage()
    mail["From"], mail["To"], mail["Subject"] = "jörg@exämple.com", "zoë@example.com", "Grüße"
    mail.set_content("Hallo Zoë")
    async with FakeSMTPServer() as server, client(server) as smtp:
        await smtp.send_message(mail)
        [received] = await server.wait_for(1)
    assert received.mail_from == "jörg@exämple.com" and received.rcpt_tos == ["zoë@example.com"]
    assert received.subject == "Grüße" and received.text == "Hallo Zoë\n"

    async with FakeSMTPServer(smtputf8=False) as server, client(server) as smtp:
        with pytest.raises(aiosmtplib.SMTPNotSupported):
            await smtp.send_message(mail)
        assert server.messages == []


async def test_chosen_recipients_are_refused_and_the_others_get_the_message() -> None:
    """As an MTA refuses an unknown mailbox at its RCPT and takes the others."""
    async with FakeSMTPServer() as server, client(server) as smtp:
        server.refuse_recipients({"bob@example.com": (550, "5.1.1 no such user")})
        recipients = [TO, "bob@example.com", "cy@example.com"]
        refused, reply = await smtp.sendmail(FROM, recipients, message("partly"))
        assert reply.startswith("2.0.0 OK")
        assert {address: r.code for address, r in refused.items()} == {"bob@example.com": 550}
        assert "no such user" in refused["bob@example.com"].message
        [received] = await server.wait_for(1)
        assert received.rcpt_tos == [TO, "cy@example.com"]  # the accepted ones only
        assert server.rejected == 0  # the transaction itself went through

        # A function of the address: a temporary refusal, the rest accepted.
        server.refuse_recipients(lambda a: (452, "4.2.2 mailbox full") if "cy" in a else None)
        refused, _ = await smtp.sendmail(FROM, recipients, message("function"))
        assert {address: r.code for address, r in refused.items()} == {"cy@example.com": 452}
        assert server.messages[-1].rcpt_tos == [TO, "bob@example.com"]

        # Every recipient refused: nothing is sent.
        server.refuse_recipients(lambda address: (550, "5.1.1 no such user"))
        with pytest.raises(aiosmtplib.SMTPRecipientsRefused):
            await smtp.sendmail(FROM, [TO], message("none"))
        server.reset_failures()
        await smtp.sendmail(FROM, recipients, message("all"))
        assert server.messages[-1].rcpt_tos == recipients
    with pytest.raises(ValueError, match="4xx or 5xx"):
        server.refuse_recipients({TO: (250, "fine")})


async def test_mail_and_rcpt_parameters_are_kept() -> None:
    async with FakeSMTPServer() as server, client(server) as smtp:
        options = ["SMTPUTF8", "BODY=8BITMIME"]
        await smtp.sendmail(FROM, [TO], message(), mail_options=options)
        [received] = await server.wait_for(1)
    # As sent: aiosmtplib adds the SIZE the server advertises.
    assert received.mail_options == [f"SIZE={len(message())}", "SMTPUTF8", "BODY=8BITMIME"]
    assert received.rcpt_options == []


async def test_auth_over_plain_tcp_warns_of_nothing(
    recwarn: pytest.WarningsRecorder, caplog: pytest.LogCaptureFixture
) -> None:
    """aiosmtpd warns (and logs) that AUTH without TLS is insecure, and logs a deprecation
    at each AUTH: neither is the test author's doing, nor to be seen by them."""
    caplog.set_level("INFO", logger="mail.log")
    async with FakeSMTPServer(auth=("mailer", "s3cret")) as server:
        async with client(server, username="mailer", password="s3cret") as smtp:
            await smtp.sendmail(FROM, [TO], message())
        async with client(server) as smtp:  # still asked for
            with pytest.raises(aiosmtplib.SMTPSenderRefused) as refused:
                await smtp.sendmail(FROM, [TO], message())
            assert refused.value.code == 530
            assert (await smtp.execute_command(b"VRFY", TO.encode())).code == 530
    assert [str(w.message) for w in recwarn] == []
    assert [r.getMessage() for r in caplog.records if r.levelname == "WARNING"] == []
