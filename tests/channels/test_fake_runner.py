"""The fakes as `txmsg fake smtp|twilio` run them: printing what arrives, the SMTP mailbox."""

from __future__ import annotations

import asyncio
import contextlib
import smtplib
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import aiosmtplib
import httpx

from helpers import free_port
from txmsg.testing import FakeSMTPServer
from txmsg.testing.http import LoopServer
from txmsg.testing.runner import mailbox_app, run_smtp, run_twilio
from txmsg.testing.smtp import ReceivedMessage

MAIL = (
    b"From: shop@example.com\r\nTo: ada@example.org\r\nSubject: Your order\r\n"
    b"Content-Type: text/plain\r\n\r\nIt shipped.\r\n"
)


@asynccontextmanager
async def running(
    run: Callable[[asyncio.Event], Awaitable[None]], printed: list[str]
) -> AsyncIterator[None]:
    stop = asyncio.Event()
    task = asyncio.create_task(run(stop))
    while not printed:  # the first line says it listens
        assert not task.done(), task.result()
        await asyncio.sleep(0.01)
    try:
        yield
    finally:
        stop.set()
        await task


async def test_fake_smtp_prints_each_mail_and_keeps_it_at_its_mailbox() -> None:
    printed: list[str] = []
    port, http_port = free_port(), free_port()
    async with running(
        lambda stop: run_smtp("127.0.0.1", port, http_port, stop, printed.append), printed
    ):
        await aiosmtplib.send(
            MAIL,
            sender="shop@example.com",
            recipients=["ada@example.org"],
            hostname="127.0.0.1",
            port=port,
        )
        assert printed[1] == (
            "--- mail from <shop@example.com> to ada@example.org\n"
            "Subject: Your order\n\nIt shipped."
        )
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{http_port}") as box:
            [mail] = (await box.get("/messages")).json()
            assert (mail["mail_from"], mail["rcpt_tos"]) == (
                "shop@example.com",
                ["ada@example.org"],
            )
            assert (mail["subject"], mail["text"].strip()) == ("Your order", "It shipped.")
            assert (await box.delete("/messages")).status_code == 204
            assert (await box.get("/messages")).json() == []


async def test_fake_twilio_prints_each_sms_and_sends_its_receipts() -> None:
    printed: list[str] = []
    receipts: list[dict[str, str]] = []
    callback_port, port = free_port(), free_port()

    async def receiver(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode()
        length = int(head.lower().split("content-length: ")[1].split("\r\n")[0])
        form = dict(httpx.QueryParams((await reader.readexactly(length)).decode()))
        receipts.append(form)
        writer.write(b"HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n")
        await writer.drain()
        writer.close()

    callbacks = await asyncio.start_server(receiver, "127.0.0.1", callback_port)
    all_printed = asyncio.Event()  # the listening line, the SMS, its two callbacks

    def out(line: str) -> None:
        printed.append(line)
        if len(printed) == 4:
            all_printed.set()

    sid, token = "AC" + "1" * 32, "a-token"
    run = lambda stop: run_twilio("127.0.0.1", port, sid, token, stop, out=out)  # noqa: E731
    async with callbacks, running(run, printed):
        async with httpx.AsyncClient(auth=(sid, token)) as client:
            r = await client.post(
                f"http://127.0.0.1:{port}/2010-04-01/Accounts/{sid}/Messages.json",
                data={
                    "To": "+14155552671",
                    "From": "+14155550100",
                    "Body": "Your code is 482913",
                    "StatusCallback": f"http://127.0.0.1:{callback_port}/status?pkey=P1",
                },
            )
        assert r.status_code == 201, r.text
        # Each callback's line is printed once its answer is read, after the receiver has the
        # form: wait for the lines themselves before stopping the fake (which cancels them).
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(all_printed.wait(), 30)
    message_sid = r.json()["sid"]
    assert (
        printed[1]
        == f"--- SMS {message_sid} from +14155550100 to +14155552671\nYour code is 482913"
    )
    assert [(f["MessageSid"], f["MessageStatus"]) for f in receipts] == [
        (message_sid, "sent"),
        (message_sid, "delivered"),
    ]
    assert printed[2:] == [
        f"status callback sent for {message_sid}: HTTP 204",
        f"status callback delivered for {message_sid}: HTTP 204",
    ]


def test_running_a_fake_module_says_which_command_runs_it() -> None:
    for name in ("smtp", "twilio"):
        done = subprocess.run(
            [sys.executable, "-m", f"txmsg.testing.{name}"], capture_output=True, text=True
        )
        assert done.returncode == 1
        assert f"txmsg fake {name} --help" in done.stderr


async def test_a_large_mailbox_is_read_without_holding_up_the_smtp_side() -> None:
    """Thousands of mails read at once: the SMTP side still greets a new connection at once
    (the views are made off the loop, once each), and `?since=N` reads from the Nth on."""
    fake = FakeSMTPServer()
    html = (
        b"From: shop@example.com\r\nTo: ada@example.org\r\nSubject: Your order\r\n"
        b"MIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary=b\r\n\r\n"
        b"--b\r\nContent-Type: text/plain\r\n\r\nIt shipped.\r\n"
        b"--b\r\nContent-Type: text/html\r\n\r\n<p>It shipped.</p>\r\n--b--\r\n"
    )
    count = 3000
    async with fake:
        for i in range(count):
            fake.messages.append(
                ReceivedMessage.parse("shop@example.com", [f"u{i}@example.org"], html)
            )
        async with (
            LoopServer(mailbox_app(fake)) as box,
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{box.port}", timeout=60) as client,
        ):
            # Timed on a thread of its own (a loop held up would hold up its clock too),
            # connecting once the read is under way.
            greeting = asyncio.ensure_future(asyncio.to_thread(_greeting_time, fake.port, 0.3))
            mails = (await client.get("/messages")).json()
            greeted = await greeting
            assert len(mails) == count and mails[7]["rcpt_tos"] == ["u7@example.org"]
            assert (mails[7]["text"].strip(), mails[7]["html"].strip()) == (
                "It shipped.",
                "<p>It shipped.</p>",
            )
            assert greeted < 1.0, f"the SMTP greeting took {greeted:.1f} s"
            tail = (await client.get("/messages", params={"since": count - 2})).json()
            assert [m["rcpt_tos"] for m in tail] == [
                [f"u{count - 2}@example.org"],
                [f"u{count - 1}@example.org"],
            ]
            assert (await client.get("/messages", params={"since": count})).json() == []
            assert (await client.get("/messages", params={"since": "-1"})).status_code == 400


def _greeting_time(port: int, after: float) -> float:
    """Seconds from connecting, `after` seconds from now, to the SMTP greeting."""
    time.sleep(after)
    started = time.monotonic()
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as smtp:
        greeted = time.monotonic() - started
        smtp.noop()
    return greeted
