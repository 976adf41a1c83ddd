"""A fake SMTP server, on aiosmtpd, running in the test's own event loop.

    async with FakeSMTPServer() as smtp:
        ...  # point the engine at smtp.host / smtp.port, send
        [msg] = await smtp.wait_for(1)
        assert msg.subject == "Your order" and msg.rcpt_tos == ["ann@example.com"]

Failures can be injected per transaction stage (`fail_next`, `fail_always`), chosen
recipients refused while the others are accepted (`refuse_recipients`), AUTH can be required,
and `connections_opened` lets a test prove that connections are reused.
"""

from __future__ import annotations

import asyncio
import email.policy
import ssl
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.parser import BytesParser
from typing import Any, AnyStr

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from txmsg.testing.running import Recorder

_STAGES = ("MAIL", "RCPT", "DATA")
_PARSER = BytesParser(policy=email.policy.default)


@dataclass
class ReceivedMessage:
    """One accepted transaction."""

    mail_from: str
    rcpt_tos: list[str]  # the accepted recipients only
    data: bytes  # raw content as received (CRLF line endings)
    message: EmailMessage  # parsed with email.policy.default
    # The MAIL and RCPT parameters as sent, upper-cased (e.g. SMTPUTF8, BODY=8BITMIME); those
    # of the accepted RCPTs, one list for all of them.
    mail_options: list[str] = field(default_factory=list)
    rcpt_options: list[str] = field(default_factory=list)

    @classmethod
    def parse(
        cls,
        mail_from: str,
        rcpt_tos: list[str],
        data: bytes,
        mail_options: Sequence[str] = (),
        rcpt_options: Sequence[str] = (),
    ) -> ReceivedMessage:
        message = _PARSER.parsebytes(data.replace(b"\r\n", b"\n"))
        assert isinstance(message, EmailMessage)
        return cls(mail_from, list(rcpt_tos), data, message, list(mail_options), list(rcpt_options))

    @property
    def subject(self) -> str | None:
        value = self.message["Subject"]
        return None if value is None else str(value)

    @property
    def text(self) -> str | None:
        """The decoded text/plain body, or None."""
        return self._body("plain")

    @property
    def html(self) -> str | None:
        """The decoded text/html body, or None."""
        return self._body("html")

    def _body(self, subtype: str) -> str | None:
        part = self.message.get_body(preferencelist=(subtype,))
        if part is None or part.get_content_subtype() != subtype:
            return None
        content = part.get_content()
        assert isinstance(content, str)
        return content


# refuse_recipients: an address's (code, text), or a function answering it (None: accepted).
Refusals = Mapping[str, tuple[int, str]] | Callable[[str], tuple[int, str] | None]


@dataclass
class _Failure:
    stage: str
    reply: str
    remaining: int | None  # None: every transaction


class _Envelope(Envelope):
    def __init__(self) -> None:
        super().__init__()
        # Set once a RCPT of this transaction was refused: its later RCPTs are refused too.
        self.rejection: str | None = None


class _Session(Session):
    """aiosmtpd's session without its deprecated `login_data`: aiosmtpd itself sets it after
    each successful AUTH and logs a deprecation warning; the fake reads `auth_data` only."""

    @property
    def login_data(self) -> Any:
        return self._login_data

    @login_data.setter
    def login_data(self, value: Any) -> None:
        self._login_data = value


class _Protocol(SMTP):
    """aiosmtpd's per-connection protocol, plus: close after a 421, report when gone."""

    def __init__(self, fake: FakeSMTPServer, handler: _Handler, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self._fake = fake
        self._greeted = False

    def _create_envelope(self) -> Envelope:
        return _Envelope()

    def _create_session(self) -> Session:
        return _Session(self.loop)

    async def check_auth_needed(self, caller_method: str) -> bool:
        # aiosmtpd's own auth_required would warn, at each connection, that AUTH without TLS
        # is insecure: this loopback server offers AUTH over plain TCP on purpose, and asks
        # for it here (530 to HELP, VRFY, MAIL, RCPT and DATA before AUTH, as aiosmtpd does).
        assert self.session is not None
        if self._fake._auth is not None and not self.session.authenticated:
            await self.push("530 5.7.0 Authentication required")
            return True
        return False

    async def push(self, status: AnyStr) -> None:
        if not self._greeted:  # the first reply is the greeting
            self._greeted = True
            if self._fake.connect_delay:
                await asyncio.sleep(self._fake.connect_delay)  # a relay slow to reach
        await super().push(status)
        raw = status.encode("ascii", "replace") if isinstance(status, str) else status
        if raw.startswith(b"421") and self.transport is not None:
            # 421 = "service closing transmission channel": real servers hang up after it.
            self.transport.close()

    def connection_lost(self, error: Exception | None) -> None:
        super().connection_lost(error)
        self._fake._live.discard(self)


class _Handler:
    def __init__(self, fake: FakeSMTPServer) -> None:
        self._fake = fake

    async def handle_EHLO(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        hostname: str,
        responses: list[str],
    ) -> list[str]:
        session.host_name = hostname
        if self._fake.pipelining:
            responses.insert(-1, "250-PIPELINING")
        return responses

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        rejection = self._fake._reject("MAIL", envelope)
        if rejection:
            return rejection
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        rejection = self._fake._reject("RCPT", envelope) or self._fake._refusal(address)
        if rejection:
            return rejection
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(options)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self._fake._drops and isinstance(server.transport, asyncio.Transport):
            self._fake._drops -= 1
            self._fake.dropped += 1
            server.transport.abort()
            return "421 4.4.2 connection dropped"  # never reaches the client
        if self._fake.delay:
            await asyncio.sleep(self._fake.delay)  # a slow server: the reply comes late
        rejection = self._fake._reject("DATA", envelope)
        if rejection:
            return rejection
        return self._fake._accept(envelope)


class FakeSMTPServer(Recorder[ReceivedMessage]):
    """An SMTP server that records what it accepts, for tests. Use as an async context manager."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        auth: tuple[str, str] | None = None,
        delay: float = 0.0,
        connect_delay: float = 0.0,
        pipelining: bool = True,
        smtputf8: bool = True,
        tls: ssl.SSLContext | None = None,
        implicit_tls: bool = False,
    ) -> None:
        super().__init__()
        self.host = host
        # A server-side TLS context: offered through STARTTLS, or from the first byte when
        # implicit_tls (port 465 style).
        self.tls = tls
        self.implicit_tls = implicit_tls
        if implicit_tls and tls is None:
            raise ValueError("implicit_tls needs a tls context")
        # Advertise PIPELINING (RFC 2920) as Postfix and Exim do; aiosmtpd reads commands as they
        # come, so pipelined ones work. False: a server that wants each reply awaited.
        self.pipelining = pipelining
        # Offer SMTPUTF8 (RFC 6531: non-ASCII addresses and headers) as Postfix, Exim and Gmail
        # do. False: a server without it, which refuses 8-bit commands.
        self.smtputf8 = smtputf8
        self.delay = delay  # seconds before answering each message's DATA (settable any time)
        # Seconds before greeting each new connection (a distant relay, a slow TLS or AUTH
        # set-up): the client's first sends wait for it; settable any time.
        self.connect_delay = connect_delay
        self.port = port  # 0 until start() if an ephemeral port was asked for
        self.connections_opened = 0
        self.rejected = 0  # transactions answered with an injected failure
        self.dropped = 0  # connections hung up mid-DATA (drop_next)
        self._drops = 0
        self._auth = auth
        self._handler = _Handler(self)
        self._failure: _Failure | None = None
        self._refusals: Refusals | None = None
        self._server: asyncio.Server | None = None
        self._live: set[_Protocol] = set()

    async def start(self) -> None:
        """Listen; a started fake ignores a second start. Each run begins empty: no messages,
        counters at zero (failure rules end with the run that set them: see `stop()`)."""
        if self._server is not None:
            return
        self._begin_run()
        self.connections_opened = self.rejected = self.dropped = 0
        loop = asyncio.get_running_loop()
        ssl_context = self.tls if self.implicit_tls else None
        self._server = await loop.create_server(
            self._new_connection, self.host, self.port, ssl=ssl_context
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Stop listening and hang up; what was recorded stays readable until the next start.
        The failure rules end here: a rule a test set and did not use up does not reach the
        next run (rules set while stopped apply to the next run)."""
        if self._server is None:
            return
        server, self._server = self._server, None
        self.reset_failures()
        server.close()
        # Server.close() leaves accepted connections open (Python < 3.12): hang them up too.
        for protocol in list(self._live):
            if protocol.transport is not None:
                protocol.transport.close()
        await server.wait_closed()
        await asyncio.sleep(0)  # let connection_lost callbacks run before the loop moves on

    def fail_next(
        self,
        code: int,
        text: str = "Injected failure",
        *,
        count: int = 1,
        stage: str = "DATA",
    ) -> None:
        """Answer the next `count` transactions with `code text` at `stage` (replaces any rule)."""
        if count < 1:
            raise ValueError("count must be at least 1")
        self._failure = _Failure(_check_stage(stage), _reply(code, text), count)

    def fail_always(
        self, code: int, text: str = "Injected failure", *, stage: str = "DATA"
    ) -> None:
        """Answer every transaction with `code text` at `stage` until reset_failures()."""
        self._failure = _Failure(_check_stage(stage), _reply(code, text), None)

    def drop_next(self, count: int = 1) -> None:
        """Hang up the next `count` transactions once their DATA content has arrived, before
        any reply (a server or network dropping mid-DATA): nothing is accepted."""
        if count < 1:
            raise ValueError("count must be at least 1")
        self._drops = count

    def refuse_recipients(self, refusals: Refusals) -> None:
        """Refuse chosen recipients at their RCPT, as an MTA refuses an unknown mailbox, and
        accept the others: `{"bob@example.com": (550, "5.1.1 no such user")}`, or a function
        of the address answering `(code, text)` or None (accepted). The message is delivered
        to the accepted recipients only (its `rcpt_tos`). Until `reset_failures()` or the stop;
        a new call replaces the last. A whole-transaction rule (`fail_next(stage="RCPT")`)
        comes first."""
        if not callable(refusals):
            refusals = dict(refusals)
            for code, text in refusals.values():
                _reply(code, text)  # a 4xx or 5xx, said now rather than at the RCPT
        self._refusals = refusals

    def reset_failures(self) -> None:
        """Forget the failure rules: `fail_next`, `fail_always`, `drop_next`,
        `refuse_recipients`."""
        self._failure = None
        self._drops = 0
        self._refusals = None

    def _new_connection(self) -> _Protocol:
        self.connections_opened += 1
        kwargs: dict[str, Any] = {
            "hostname": "localhost",  # no getfqdn() (a DNS lookup) per connection
            "loop": asyncio.get_running_loop(),
            "enable_SMTPUTF8": self.smtputf8,
        }
        if self.tls is not None and not self.implicit_tls:
            kwargs["tls_context"] = self.tls
        if self._auth is not None:
            # AUTH offered over plain TCP (a loopback test server) and asked for by the
            # protocol's check_auth_needed, not by aiosmtpd's auth_required, which warns.
            kwargs.update(authenticator=self._authenticate, auth_require_tls=False)
        protocol = _Protocol(self, self._handler, **kwargs)
        self._live.add(protocol)
        return protocol

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        assert self._auth is not None
        user, password = self._auth
        ok = isinstance(data, LoginPassword) and (data.login, data.password) == (
            user.encode(),
            password.encode(),
        )
        # handled=False and no message: aiosmtpd answers "535 5.7.8 ... invalid".
        return AuthResult(success=ok, handled=False, auth_data=data if ok else None)

    def _summary(self) -> str:
        return f" ({self.rejected} rejected)"

    def _refusal(self, address: str) -> str | None:
        """The reply refusing this recipient, if `refuse_recipients` names it."""
        rule = self._refusals
        if rule is None:
            return None
        answer = rule(address) if callable(rule) else rule.get(address)
        return None if answer is None else _reply(*answer)

    def _reject(self, stage: str, envelope: Envelope) -> str | None:
        """The reply rejecting this transaction at `stage`, if a failure is injected."""
        assert isinstance(envelope, _Envelope)
        if envelope.rejection is not None:  # e.g. a second RCPT of a rejected transaction
            return envelope.rejection
        rule = self._failure
        if rule is None or rule.stage != stage:
            return None
        if rule.remaining is not None:
            rule.remaining -= 1
            if rule.remaining == 0:
                self._failure = None
        if stage == "RCPT":
            # Only a refused RCPT leaves a transaction open: a refused MAIL opens none, and
            # aiosmtpd keeps that envelope (a client may send MAIL again without RSET), and a
            # DATA reply ends the transaction.
            envelope.rejection = rule.reply
        self.rejected += 1
        return rule.reply

    def _accept(self, envelope: Envelope) -> str:
        assert envelope.mail_from is not None and envelope.original_content is not None
        self._record(
            ReceivedMessage.parse(
                envelope.mail_from,
                envelope.rcpt_tos,
                envelope.original_content,
                envelope.mail_options,
                envelope.rcpt_options,
            )
        )
        return f"250 2.0.0 OK queued as fake-{len(self.messages)}"


def _check_stage(stage: str) -> str:
    if stage not in _STAGES:
        raise ValueError(f"stage must be one of {_STAGES}, not {stage!r}")
    return stage


def _reply(code: int, text: str) -> str:
    if not 400 <= code < 600:
        raise ValueError("an injected failure needs a 4xx or 5xx code")
    return f"{code} {' '.join(text.split())}"


if __name__ == "__main__":  # a module, not a program: say which command runs it
    raise SystemExit("run the fake SMTP server with: txmsg fake smtp --help")
