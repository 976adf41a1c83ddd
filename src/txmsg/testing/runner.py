"""The fakes as processes (`txmsg fake smtp`, `txmsg fake twilio`), for try-outs and test
environments: the very classes the pytest plugin uses, printing what they receive.

- SMTP: `FakeSMTPServer` on `--port`; each message is printed (envelope, subject, text part)
  and kept readable at a small HTTP mailbox: `GET /messages` (JSON, oldest first; `?since=N`
  from the Nth on, 0-based, so a poller reads only what is new), `DELETE /messages` empties it.
  Each mail's view is made once, off the event loop: tens of thousands kept, a read of all of
  them still leaves the SMTP side answering (it used to parse every mail again on the loop, for
  tens of seconds, and the engine's sends timed out meanwhile).
- Twilio: `FakeTwilio` on `--port`, Twilio's Messages API for one account; each SMS is printed,
  and with `deliver` its status callback is sent (`sent`, then `delivered`), signed as Twilio does.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from txmsg.testing.http import LoopServer
from txmsg.testing.smtp import FakeSMTPServer, ReceivedMessage
from txmsg.testing.twilio import FakeSms, FakeTwilio

Print = Callable[[str], None]


def mail_view(message: ReceivedMessage) -> dict[str, Any]:
    return {
        "mail_from": message.mail_from,
        "rcpt_tos": message.rcpt_tos,
        "subject": message.subject,
        "text": message.text,
        "html": message.html,
        "headers": dict(message.message.items()),
    }


class _Views:
    """Each received mail's JSON view, made once (parsing a mail's headers and parts costs a
    few milliseconds), keyed by the mail's identity and holding the mail (no id reused)."""

    def __init__(self) -> None:
        self._made: dict[int, tuple[ReceivedMessage, bytes]] = {}

    def json(self, mails: list[ReceivedMessage]) -> bytes:
        """The JSON array of `mails`' views; on a worker thread (the views not made yet)."""
        made, parts = self._made, []
        for mail in mails:
            entry = made.get(id(mail))
            if entry is None or entry[0] is not mail:
                entry = made[id(mail)] = (mail, orjson.dumps(mail_view(mail)))
            parts.append(entry[1])
        return b"[" + b",".join(parts) + b"]"

    def keep_within(self, count: int) -> None:
        """Forget them all when more are kept than the mailbox holds (it was emptied)."""
        if len(self._made) > count:
            self._made = {}


def mailbox_app(fake: FakeSMTPServer) -> Starlette:
    views = _Views()

    async def messages(request: Request) -> Response:
        if request.method == "DELETE":
            fake.clear()
            views.keep_within(0)
            return Response(status_code=204)
        raw = request.query_params.get("since", "0")
        if not (raw.isascii() and raw.isdigit() and len(raw) <= 18):
            return JSONResponse({"error": "since must be a whole number (0-based)"}, 400)
        mails = list(fake.messages)
        views.keep_within(len(mails))  # emptied by a test's `clear()`, say
        body = await asyncio.to_thread(views.json, mails[int(raw) :])
        return Response(body, media_type="application/json")

    return Starlette(routes=[Route("/messages", messages, methods=["GET", "DELETE"])])


def _print_mail(out: Print) -> Callable[[ReceivedMessage], None]:
    def show(message: ReceivedMessage) -> None:
        out(
            f"--- mail from <{message.mail_from}> to {', '.join(message.rcpt_tos)}\n"
            f"Subject: {message.subject}\n\n{message.text or message.html or ''}".rstrip()
        )

    return show


async def run_smtp(
    host: str, port: int, http_port: int, stop: asyncio.Event, out: Print = print
) -> None:
    """The fake SMTP server and its mailbox until `stop` is set."""
    fake = FakeSMTPServer(host, port)
    fake.on_message = _print_mail(out)
    async with fake:
        mailbox = LoopServer(mailbox_app(fake), host, http_port, "fake SMTP server's mailbox")
        await mailbox.start()
        out(f"fake SMTP server on {host}:{fake.port}; mailbox: http://{host}:{http_port}/messages")
        try:
            await stop.wait()
        finally:
            await mailbox.stop()


async def run_twilio(
    host: str,
    port: int,
    account_sid: str,
    auth_token: str,
    stop: asyncio.Event,
    *,
    deliver: bool = True,
    out: Print = print,
) -> None:
    """The fake Twilio until `stop` is set."""
    fake = FakeTwilio(account_sid, auth_token, host=host, port=port)
    receipts: set[asyncio.Task[None]] = set()

    async def receipt(sms: FakeSms) -> None:
        for status in ("sent", "delivered"):
            try:
                code = await fake.send_status(sms, status)
            except Exception as exc:  # noqa: BLE001 - told, like the callback's answer
                out(f"status callback {status} for {sms.sid} failed: {type(exc).__name__}: {exc}")
                return
            out(f"status callback {status} for {sms.sid}: HTTP {code}")

    def show(sms: FakeSms) -> None:
        sender = sms.from_ or sms.messaging_service_sid
        out(f"--- SMS {sms.sid} from {sender} to {sms.to}\n{sms.body}")
        if deliver and sms.status_callback:
            task = asyncio.create_task(receipt(sms))
            receipts.add(task)
            task.add_done_callback(receipts.discard)

    fake.on_message = show
    async with fake:
        out(
            f"fake Twilio on {fake.base_url} (account_sid {fake.account_sid}, "
            f"auth_token {fake.auth_token}): use it as the channel's api_base_url"
        )
        try:
            await stop.wait()
        finally:
            for task in receipts:
                task.cancel()
            await asyncio.gather(*receipts, return_exceptions=True)  # cancelled: nothing to tell
