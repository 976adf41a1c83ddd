"""The bounce listener: an SMTP server (aiosmtpd) for the bounce domains, in the serving
process's own event loop.

It accepts mail only for genuine VERP addresses (`b-<pkey>-<signature>@<bounce domain>`, see
core/verp.py) and each bounce domain's feedback-loop address (`fbl@<bounce domain>`); any
other recipient, a forged or altered signature included, gets a 550. Accepted mail is parsed
(core/inbound_reports.py): a DSN's bounce or an ARF complaint is recorded against its message
through the write funnel before the 250 is given (a failed write answers 451, so the sending
MTA retries); mail that is no report (auto-replies), and a DSN sent to fbl@ (only complaints
naming a signed VERP sender are read there), is accepted and dropped; mail the parser cannot
read gets 554 5.6.0. Message content and addresses are never logged.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session

from txmsg.core import inbound_reports
from txmsg.core.feedback import Feedback
from txmsg.core.verp import SECRET_NAME, is_feedback_address, read_bounce_address
from txmsg.engine.writer import Writer
from txmsg.store.cache import TTLCache
from txmsg.store.db import Database
from txmsg.store.feedback import bounce_domains
from txmsg.store.secrets import ServerSecrets
from txmsg.store.startup_errors import cannot_listen

log = logging.getLogger(__name__)
MAX_RECIPIENTS = 50


class BounceListener:
    def __init__(
        self,
        db: Database,
        writer: Writer,
        host: str,
        port: int,
        *,
        max_bytes: int,
        cache_seconds: float,
        hostname: str = "localhost",
        secrets: ServerSecrets | None = None,
    ) -> None:
        self._db = db
        self._writer = writer
        self.host = host
        self.port = port
        self._max_bytes = max_bytes
        self._hostname = hostname
        self._secrets = secrets or ServerSecrets(db)
        self._secret: str | None = None
        self._domains: TTLCache[None, frozenset[str]] = TTLCache(
            self._load_domains, cache_seconds, 1
        )
        self._server: asyncio.Server | None = None
        self._live: set[SMTP] = set()

    async def _load_domains(self, _key: None) -> frozenset[str]:
        return await self._db.read(bounce_domains)

    async def start(self) -> None:
        # aiosmtpd logs every command line at INFO (recipients' addresses among them): a
        # filter keeps its warnings only, without changing the shared logger's level.
        logging.getLogger("mail.log").addFilter(_QUIET)
        self._secret = await self._secrets.get_or_create(SECRET_NAME)
        loop = asyncio.get_running_loop()
        try:
            self._server = await loop.create_server(self._connection, self.host, self.port)
        except OSError as exc:  # told as the setting that chose the address
            raise cannot_listen(f"TXMSG_BOUNCE_LISTEN {self.host}:{self.port}", exc) from exc
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("bounce listener on %s:%d", self.host, self.port)

    async def stop(self) -> None:
        if self._server is None:
            return
        server, self._server = self._server, None
        server.close()
        for protocol in list(self._live):  # Server.close() leaves accepted connections open
            if protocol.transport is not None:
                protocol.transport.close()
        await server.wait_closed()

    def _connection(self) -> SMTP:
        protocol = _Protocol(
            self,
            _Handler(self),
            hostname=self._hostname,  # no getfqdn() (a DNS lookup) per connection
            data_size_limit=self._max_bytes,
            loop=asyncio.get_running_loop(),
        )
        self._live.add(protocol)
        return protocol

    async def domains(self) -> frozenset[str] | None:
        """The configured bounce domains (cached like the other configuration); None when
        the database cannot tell now (the command gets a 451: the sender tries again)."""
        try:
            return await self._domains.get(None)
        except Exception:
            log.exception("bounce listener: reading the bounce domains failed")
            return None

    def config_changed(self) -> None:
        self._domains.clear()

    def pkey_of(self, address: str, domains: frozenset[str]) -> str | None:
        """The message a VERP recipient names; None for anything else."""
        assert self._secret is not None
        return read_bounce_address(self._secret, address, domains)

    def pkey_of_complaint(
        self, report: inbound_reports.InboundReport, domains: frozenset[str]
    ) -> str | None:
        """For the feedback loop's address: the message an ARF complaint is about (signed
        VERP address of the original only; a DSN names nothing there)."""
        assert self._secret is not None
        return inbound_reports.complained_message(report, self._secret, domains)

    def now(self) -> datetime:
        """The database's time: a report's entry is compared with its send's."""
        return self._db.clock.now()

    async def record(self, reports: list[Feedback]) -> None:
        await self._writer.record_feedback(reports)


class _Protocol(SMTP):
    def __init__(self, listener: BounceListener, handler: _Handler, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self._listener = listener

    def connection_lost(self, error: Exception | None) -> None:
        super().connection_lost(error)
        self._listener._live.discard(self)


class _Handler:
    def __init__(self, listener: BounceListener) -> None:
        self._listener = listener

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if len(envelope.rcpt_tos) >= MAX_RECIPIENTS:
            return "452 4.5.3 Too many recipients"
        listener = self._listener
        domains = await listener.domains()
        if domains is None:
            return _TRY_LATER
        if listener.pkey_of(address, domains) is None and not is_feedback_address(address, domains):
            return "550 5.1.1 No such bounce address"
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(options)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        # Parsing a large report takes a while: off the event loop.
        try:
            report = await asyncio.to_thread(inbound_reports.parse, raw)
        except Exception as exc:  # noqa: BLE001 - any parser failure on hostile MIME: refused
            # Only the class: the message (and the traceback's locals) may hold content.
            log.warning("bounce listener: unreadable message refused (%s)", type(exc).__name__)
            return "554 5.6.0 Unreadable message"
        if report.kind is None:
            return "250 2.0.0 OK (not a delivery or feedback report: dropped)"
        listener = self._listener
        domains = await listener.domains()
        if domains is None:
            return _TRY_LATER
        pkeys = {p for a in envelope.rcpt_tos if (p := listener.pkey_of(a, domains)) is not None}
        if not pkeys:  # the feedback-loop address: the attached original names the message
            # Only ARF complaints are read there; a DSN sent to it is dropped (250: refusing
            # a bounce only makes the sending MTA bounce it to its postmaster).
            pkey = listener.pkey_of_complaint(report, domains)
            if pkey is None:
                log.info("bounce listener: a %s report naming no message of ours", report.kind)
                return "250 2.0.0 OK (no message of ours is named: dropped)"
            pkeys = {pkey}
        now = listener.now()
        reports = [
            Feedback(p, report.kind, report.reason, now, _SOURCES[report.kind], report.hard)
            for p in sorted(pkeys)
        ]
        try:
            await listener.record(reports)
        except Exception:
            log.exception("bounce listener: recording a %s report failed", report.kind)
            return _TRY_LATER
        for p in sorted(pkeys):
            log.info(
                "bounce listener: %s%s for %s",
                report.kind,
                (" (hard)" if report.hard else " (soft)") if report.kind == "bounce" else "",
                p,
            )
        return "250 2.0.0 OK"


class _WarningsOnly(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING


_QUIET = _WarningsOnly()
_SOURCES = {"bounce": "dsn", "spam": "arf"}
_TRY_LATER = "451 4.3.0 Temporary failure, try again later"
