"""Pooled SMTP delivery: sessions opened by aiosmtplib, transactions run by smtp_session.py.

One `SMTPPool` per channel configuration keeps up to `pool_size` connections open and reuses
them across sends: connecting, TLS and AUTH cost several round trips, a mail transaction two
(pipelined) or four. Every outcome is turned into the engine's own `TransientSendError` (retry
later) or `PermanentSendError` (give up), whose `reason` holds the server's code and text.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import ssl
from dataclasses import replace

import aiosmtplib

from txmsg.channels.ranked_slots import RankedSlots
from txmsg.channels.smtp_session import ReplyError, SessionLost, SMTPSession
from txmsg.core.delivery import (
    FAULT_4XX,
    FAULT_5XX,
    FAULT_AUTH,
    FAULT_CONNECT,
    FAULT_PROTOCOL,
    FAULT_TIMEOUT,
    FAULT_TLS,
    NotAttempted,
    PermanentSendError,
    SendError,
    SendWithdrawn,
    TransientSendError,
    Unsendable,
    credential_forms,
)
from txmsg.core.email_config import SMTPSettings
from txmsg.core.lanes import SEND_RANK, SEND_WITHDRAWN

_QUIT_TIMEOUT = 5.0
# aiosmtplib reduces "anything <a@b>" to a@b and drops what follows CR/LF; an envelope address
# should be one bare addr-spec, so refuse anything else rather than send it somewhere else.
_BAD_ENVELOPE_ADDRESS = re.compile(r"[\s<>\x00-\x1f\x7f]")


class SMTPPool:
    """At most `pool_size` connections, opened lazily, reused, replaced when broken."""

    def __init__(self, settings: SMTPSettings) -> None:
        self._settings = settings
        # A permit per connection in use; a connection is only opened while holding one and
        # only when no idle one exists, so open connections never exceed pool_size. Sends
        # waiting for one are served by their lane (`SEND_RANK`), transactional first, and
        # go only if not withdrawn while they waited (`SEND_WITHDRAWN`).
        self._slots = RankedSlots(settings.pool_size)
        self._idle: list[SMTPSession] = []
        self._closed = False
        self._local_hostname: str | None = None

    async def send(self, envelope_from: str, recipients: list[str], data: bytes) -> str:
        """Run one mail transaction; return the server's final reply, e.g. "250 OK ..."."""
        if not recipients:
            raise Unsendable("no recipients")
        addresses = [envelope_from, *recipients]
        if any(not a or not a.isascii() or _BAD_ENVELOPE_ADDRESS.search(a) for a in addresses):
            # Non-ASCII addresses would need SMTPUTF8, which the sender does not negotiate.
            raise Unsendable("invalid envelope address")
        async with self._slots.slot(SEND_RANK.get()):
            if self._closed:
                raise NotAttempted("SMTP pool is closed")
            withdrawn = SEND_WITHDRAWN.get()
            if withdrawn():
                raise SendWithdrawn("withdrawn while it waited for a connection")
            conn = self._idle_connection()
            if conn is None:
                conn = await self._connect()
                if withdrawn():  # connecting took time (a slow relay, TLS, AUTH): ask again
                    self._checkin(conn, True)
                    raise SendWithdrawn("withdrawn while its connection was opened")
            reusable = False
            try:
                final = await conn.send(envelope_from, recipients, data)
                reusable = True
                return f"250 {_one_line(final[1])}"  # only returned after a 250 to the message
            except ReplyError as exc:
                # 421 means the server is closing the channel; otherwise make sure the envelope
                # is cleared before reusing.
                reusable = exc.reply[0] != 421 and await conn.reset()
                raise self._error(exc) from exc
            except (aiosmtplib.SMTPException, OSError, TimeoutError, ValueError) as exc:
                raise self._error(exc) from exc
            finally:
                self._checkin(conn, reusable)

    async def close(self) -> None:
        """Quit idle connections; connections in use are closed when their send ends."""
        self._closed = True
        idle, self._idle = self._idle, []
        await asyncio.gather(*(conn.quit(_QUIT_TIMEOUT) for conn in idle))

    def _idle_connection(self) -> SMTPSession | None:
        """An idle connection to reuse, if one is still clean; None: open one."""
        while self._idle:
            conn = self._idle.pop()  # most recently used first: least likely to have idled out
            if conn.is_clean:  # the server may have closed it (or spoken) while it sat idle
                return conn
        return None

    def _checkin(self, conn: SMTPSession, reusable: bool) -> None:
        if reusable and conn.is_clean and not self._closed:
            self._idle.append(conn)
        else:
            # Unknown protocol state (timeout, cancellation, 421, failed RSET): never reuse it.
            conn.close()

    async def _connect(self) -> SMTPSession:
        if self._local_hostname is None:
            # aiosmtplib would look the FQDN up again for every connection; do it once.
            self._local_hostname = await asyncio.to_thread(socket.getfqdn)
        conn = await open_session(self._settings, self._local_hostname)
        try:
            return SMTPSession.adopt(conn)
        except SessionLost as exc:
            conn.close()
            raise TransientSendError(f"SMTP connection failed: {exc}", fault=FAULT_CONNECT) from exc

    def _error(self, exc: BaseException) -> SendError:
        # Servers do not echo credentials, but a reason is shown to API users: be certain.
        s = self._settings
        error = _classify(exc)
        error.fault = _session_fault(exc)
        return error.masking(credential_forms(s.username or "", s.password or ""))


class SessionRefused(TransientSendError):
    """Opening a session failed: connecting, greeting, STARTTLS or AUTH (`stage`). Whatever
    the reply, the relay's doing (a password rotated, an extension missing), never the
    recipient's: retried, and the next relay tried, as the relay being down would be."""

    def __init__(self, stage: str, error: SendError, fault: str) -> None:
        super().__init__(error.reason, error.retry_after, fault=fault)
        self.stage = stage


async def open_session(settings: SMTPSettings, local_hostname: str | None) -> aiosmtplib.SMTP:
    """A connection to the relay, greeted, with STARTTLS and AUTH as configured; else
    `SessionRefused`, which says at which step and why (no credential in its reason)."""
    s = settings
    conn = aiosmtplib.SMTP(
        hostname=s.host,
        port=s.port,
        local_hostname=local_hostname,
        timeout=s.timeout,
        use_tls=s.tls == "tls",
        start_tls=False,  # below, when "starttls"; never an opportunistic upgrade
        validate_certs=s.validate_certs,
    )
    stage = "connect"
    try:
        await conn.connect()
        stage = "EHLO"
        await _greet(conn)
        if s.tls == "starttls":
            stage = "STARTTLS"
            await conn.starttls()
            await _greet(conn)  # again: what the server offers over TLS
        if s.username:
            stage = "AUTH"
            await conn.login(s.username, s.password or "")
        return conn
    except (aiosmtplib.SMTPException, OSError) as exc:
        conn.close()
        error = _classify(exc).masking(credential_forms(s.username or "", s.password or ""))
        raise SessionRefused(stage, error, _setup_fault(stage, exc)) from exc
    except BaseException:  # cancelled mid-greeting: never leave the connection open
        conn.close()
        raise


async def _greet(conn: aiosmtplib.SMTP) -> None:
    """EHLO, or HELO to a server without ESMTP; once per session (and again after STARTTLS)."""
    if conn.is_ehlo_or_helo_needed:
        try:
            await conn.ehlo()
        except aiosmtplib.SMTPHeloError:
            await conn.helo()


async def probe(settings: SMTPSettings, timeout: float) -> str:
    """Open a session as a send would (connect, EHLO, STARTTLS and AUTH as configured), then
    QUIT: what went well, e.g. "EHLO, STARTTLS, AUTH accepted"; else `SessionRefused`.
    No mail is sent. `timeout` bounds each step (and the settings' own time-out)."""
    bounded = replace(settings, timeout=min(settings.timeout, timeout))
    conn = await open_session(bounded, None)
    try:
        with contextlib.suppress(aiosmtplib.SMTPException, OSError):
            await conn.quit(timeout=min(timeout, _QUIT_TIMEOUT))
    finally:
        conn.close()
    steps = ["EHLO"]
    if settings.tls == "tls":
        steps.insert(0, "TLS")
    if settings.tls == "starttls":
        steps.append("STARTTLS")
    if settings.username:
        steps.append("AUTH")
    return f"{', '.join(steps)} accepted"


def _setup_fault(stage: str, exc: BaseException) -> str:
    """The kind of failure of a session being opened at `stage`."""
    if _is_tls_error(exc):
        return FAULT_TLS
    if isinstance(exc, TimeoutError):
        return FAULT_TIMEOUT
    if stage == "STARTTLS":  # refused, not offered, or the connection lost in the handshake
        return FAULT_TLS
    if stage == "AUTH" and not isinstance(exc, OSError):  # refused (535, 530), or not offered
        return FAULT_AUTH
    reply = _reply_of(exc)
    if reply is not None:
        return FAULT_4XX if reply[0] < 500 else FAULT_5XX
    return FAULT_CONNECT if isinstance(exc, OSError) else FAULT_PROTOCOL


def _session_fault(exc: BaseException) -> str | None:
    """The relay's fault in a failed mail transaction, if it is one: a 421 (closing), a time-out
    or a connection lost. A refusal of the sender, a recipient or the content is the message's."""
    if isinstance(exc, ReplyError):
        return FAULT_4XX if exc.reply[0] == 421 else None
    if isinstance(exc, TimeoutError):
        return FAULT_TIMEOUT
    if isinstance(exc, OSError):
        return FAULT_CONNECT
    return None


def _is_tls_error(exc: BaseException | None) -> bool:
    """Whether a TLS handshake or certificate check is behind `exc` (aiosmtplib wraps them)."""
    seen = 0
    while exc is not None and seen < 8:
        if isinstance(exc, ssl.SSLError | ssl.CertificateError):
            return True
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return False


def _classify(exc: BaseException) -> SendError:
    reply = _reply_of(exc)
    if reply is not None:
        code, text = reply
        reason = f"{code} {_one_line(text)}".rstrip()
        return PermanentSendError(reason) if code >= 500 else TransientSendError(reason)
    if isinstance(exc, (aiosmtplib.SMTPTimeoutError, TimeoutError)):
        return TransientSendError(f"SMTP timeout: {_one_line(str(exc))}")
    if isinstance(exc, OSError):  # refused, reset, closed, TLS handshake (ConnectionError too)
        return TransientSendError(f"SMTP connection failed: {_one_line(str(exc))}")
    # Unsupported AUTH/STARTTLS, malformed address: a configuration or input problem.
    return PermanentSendError(f"SMTP error: {_one_line(str(exc))}")


def _reply_of(exc: BaseException) -> tuple[int, str] | None:
    """The server's 4xx/5xx reply, if the error carries one."""
    if isinstance(exc, ReplyError):
        return exc.reply
    if isinstance(exc, aiosmtplib.SMTPResponseException) and 400 <= exc.code < 600:
        return exc.code, exc.message
    return None


def _one_line(text: str) -> str:
    return " ".join(text.split())
