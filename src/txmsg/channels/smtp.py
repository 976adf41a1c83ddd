"""Pooled SMTP delivery on aiosmtplib.

One `SMTPPool` per channel configuration keeps up to `pool_size` connections open and reuses
them across sends: connecting, TLS and AUTH cost several round trips, a mail transaction only
three. Every outcome is turned into the engine's own `TransientSendError` (retry later) or
`PermanentSendError` (give up), whose `reason` holds the server's code and text.
"""

from __future__ import annotations

import asyncio
import re
import socket
from dataclasses import dataclass, field

import aiosmtplib

from txmsg.core.delivery import PermanentSendError, SendError, TransientSendError

_TLS_MODES = ("none", "starttls", "tls")
_QUIT_TIMEOUT = 5.0
# aiosmtplib reduces "anything <a@b>" to a@b and drops what follows CR/LF; an envelope address
# should be one bare addr-spec, so refuse anything else rather than send it somewhere else.
_BAD_ENVELOPE_ADDRESS = re.compile(r"[\s<>\x00-\x1f\x7f]")


@dataclass(frozen=True, slots=True)
class SMTPSettings:
    host: str
    port: int = 25
    tls: str = "none"  # "none" | "starttls" | "tls" (implicit TLS)
    username: str | None = None
    password: str | None = field(default=None, repr=False)  # never in logs or tracebacks
    timeout: float = 30.0
    pool_size: int = 8
    validate_certs: bool = True

    def __post_init__(self) -> None:
        if self.tls not in _TLS_MODES:
            raise ValueError(f"tls must be one of {_TLS_MODES}, not {self.tls!r}")
        if self.pool_size < 1:
            raise ValueError("pool_size must be at least 1")


class SMTPPool:
    """At most `pool_size` connections, opened lazily, reused, replaced when broken."""

    def __init__(self, settings: SMTPSettings) -> None:
        self._settings = settings
        # A permit per connection in use; a connection is only opened while holding one and
        # only when no idle one exists, so open connections never exceed pool_size.
        self._slots = asyncio.Semaphore(settings.pool_size)
        self._idle: list[aiosmtplib.SMTP] = []
        self._closed = False
        self._local_hostname: str | None = None

    async def send(self, envelope_from: str, recipients: list[str], data: bytes) -> str:
        """Run one mail transaction; return the server's final reply, e.g. "250 OK ..."."""
        if not recipients:
            raise PermanentSendError("no recipients")
        if any(not a or _BAD_ENVELOPE_ADDRESS.search(a) for a in [envelope_from, *recipients]):
            raise PermanentSendError("invalid envelope address")
        async with self._slots:
            if self._closed:
                raise TransientSendError("SMTP pool is closed")
            conn = await self._checkout()
            reusable = False
            try:
                # Recipients refused while others were accepted are not an error: the message
                # went out, and retrying would duplicate it for the accepted ones.
                final = await _transaction(conn, envelope_from, recipients, data)
                reusable = True
                return f"250 {_one_line(final)}"  # only returned after a 250 to DATA
            except (aiosmtplib.SMTPResponseException, aiosmtplib.SMTPRecipientsRefused) as exc:
                reply = _reply_of(exc)
                # 421 means the server is closing the channel; otherwise make sure the envelope
                # is cleared (sendmail's own RSET hides its failure) before reusing.
                reusable = (reply is None or reply[0] != 421) and await _reset(conn)
                raise self._error(exc) from exc
            except (aiosmtplib.SMTPException, OSError, ValueError) as exc:
                raise self._error(exc) from exc
            finally:
                self._checkin(conn, reusable)

    async def close(self) -> None:
        """Quit idle connections; connections in use are closed when their send ends."""
        self._closed = True
        idle, self._idle = self._idle, []
        await asyncio.gather(*(_quit(conn) for conn in idle))

    async def _checkout(self) -> aiosmtplib.SMTP:
        while self._idle:
            conn = self._idle.pop()  # most recently used first: least likely to have idled out
            if conn.is_connected:  # the server may have closed it while it sat idle
                return conn
        return await self._connect()

    def _checkin(self, conn: aiosmtplib.SMTP, reusable: bool) -> None:
        if reusable and conn.is_connected and not self._closed:
            self._idle.append(conn)
        else:
            # Unknown protocol state (timeout, cancellation, 421, failed RSET): never reuse it.
            conn.close()

    async def _connect(self) -> aiosmtplib.SMTP:
        s = self._settings
        if self._local_hostname is None:
            # aiosmtplib would look the FQDN up again for every connection; do it once.
            self._local_hostname = await asyncio.to_thread(socket.getfqdn)
        conn = aiosmtplib.SMTP(
            hostname=s.host,
            port=s.port,
            username=s.username,
            password=s.password if s.username else None,
            local_hostname=self._local_hostname,
            timeout=s.timeout,
            use_tls=s.tls == "tls",
            start_tls=s.tls == "starttls",  # False for "none": no opportunistic upgrade
            validate_certs=s.validate_certs,
        )
        try:
            await conn.connect()  # connects, STARTTLS and AUTH as configured
            if conn.is_ehlo_or_helo_needed:
                # Greet once per connection: the transactions below go command by command.
                try:
                    await conn.ehlo()
                except aiosmtplib.SMTPHeloError:
                    await conn.helo()
        except (aiosmtplib.SMTPException, OSError) as exc:
            conn.close()
            raise self._error(exc) from exc
        return conn

    def _error(self, exc: BaseException) -> SendError:
        error = _classify(exc)
        password = self._settings.password
        if password and password in error.reason:
            # Servers do not echo credentials, but a reason is shown to API users: be certain.
            error = type(error)(error.reason.replace(password, "***"))
        return error


async def _transaction(
    conn: aiosmtplib.SMTP, envelope_from: str, recipients: list[str], data: bytes
) -> str:
    """MAIL, RCPT, DATA through aiosmtplib's command API; its errors on any refusal.

    `SMTP.sendmail` would parse every address again with `email.utils.parseaddr` (a visible
    share of the send path's CPU); ours are already checked bare addr-specs, and the message
    is 7-bit (quoted-printable), so no ESMTP options are needed.
    """
    reply = await conn.execute_command(b"MAIL", b"FROM:<" + envelope_from.encode("ascii") + b">")
    if reply.code != 250:
        raise aiosmtplib.SMTPSenderRefused(reply.code, reply.message, envelope_from)
    refused: list[aiosmtplib.SMTPRecipientRefused] = []
    for rcpt in recipients:
        reply = await conn.execute_command(b"RCPT", b"TO:<" + rcpt.encode("ascii") + b">")
        if reply.code not in (250, 251):
            refused.append(aiosmtplib.SMTPRecipientRefused(reply.code, reply.message, rcpt))
    if len(refused) == len(recipients):
        raise aiosmtplib.SMTPRecipientsRefused(refused)
    # Recipients refused while others were accepted are not an error: the message goes out,
    # and retrying would duplicate it for the accepted ones.
    assert conn.protocol is not None
    final = await conn.protocol.execute_data_command(data, timeout=conn.timeout)
    return final.message


def _classify(exc: BaseException) -> SendError:
    reply = _reply_of(exc)
    if reply is not None:
        code, text = reply
        reason = f"{code} {_one_line(text)}".rstrip()
        return PermanentSendError(reason) if code >= 500 else TransientSendError(reason)
    if isinstance(exc, aiosmtplib.SMTPTimeoutError):
        return TransientSendError(f"SMTP timeout: {_one_line(str(exc))}")
    if isinstance(exc, OSError):  # refused, reset, closed, TLS handshake (ConnectionError too)
        return TransientSendError(f"SMTP connection failed: {_one_line(str(exc))}")
    # Unsupported AUTH/STARTTLS, malformed address: a configuration or input problem.
    return PermanentSendError(f"SMTP error: {_one_line(str(exc))}")


def _reply_of(exc: BaseException) -> tuple[int, str] | None:
    """The server's 4xx/5xx reply carried by an aiosmtplib error, if any."""
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        refusals = [(r.code, r.message) for r in exc.recipients if 400 <= r.code < 600]
        # One temporarily refused recipient makes a later retry worth it.
        transient = [r for r in refusals if r[0] < 500]
        if transient:
            return transient[0]
        return refusals[0] if refusals else None
    if isinstance(exc, aiosmtplib.SMTPResponseException) and 400 <= exc.code < 600:
        return exc.code, exc.message
    return None


def _one_line(text: str) -> str:
    return " ".join(text.split())


async def _reset(conn: aiosmtplib.SMTP) -> bool:
    """Clear the envelope; False if the connection cannot be trusted any more."""
    if not conn.is_connected:
        return False
    try:
        await conn.rset()
    except (aiosmtplib.SMTPException, OSError):
        return False
    return True


async def _quit(conn: aiosmtplib.SMTP) -> None:
    try:
        if conn.is_connected:
            await conn.quit(timeout=_QUIT_TIMEOUT)
    except (aiosmtplib.SMTPException, OSError):
        pass  # closing anyway: a failed goodbye changes nothing
    finally:
        conn.close()
