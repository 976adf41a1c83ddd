"""Mail transactions on an SMTP session that aiosmtplib opened, pipelined when the server allows.

aiosmtplib connects, negotiates TLS, greets and authenticates; the session's transport is then
handed to `SMTPSession`, which runs the mail transactions. Two reasons:
- aiosmtplib waits for each reply before the next command and cannot pipeline (its protocol
  drops replies that arrive before they are awaited). With PIPELINING (RFC 2920), advertised by
  Postfix, Exim and most MTAs, MAIL, RCPT and DATA go out in one write: two round trips a
  message instead of four.
- Its per-command cost (a lock, `wait_for`, regexes over the whole message) made the client
  most of the send path's CPU. Messages built by core/mime.py are already CRLF-terminated
  7-bit text, so the body only needs dot-stuffing, done with one bytes.replace.
"""

from __future__ import annotations

import asyncio
import re

import aiosmtplib

# A reply longer than this is not SMTP: the session is dropped rather than buffered forever.
_MAX_REPLY = 64 * 1024
_BARE_LINE_END = re.compile(rb"\r\n|\r|\n")

Reply = tuple[int, str]


class ReplyError(Exception):
    """The server refused the transaction: `reply` is its (code, text), 4xx or 5xx."""

    def __init__(self, reply: Reply) -> None:
        super().__init__(f"{reply[0]} {reply[1]}")
        self.reply = reply


class SessionLost(ConnectionError):
    """The server closed the connection, or sent something that is not SMTP."""


def wire_body(message: bytes) -> bytes:
    """`message` as DATA content: CRLF line ends, leading dots doubled, ending in CRLF.CRLF."""
    if message.count(b"\n") != message.count(b"\r\n") or message.count(b"\r") != message.count(
        b"\r\n"
    ):
        message = _BARE_LINE_END.sub(b"\r\n", message)
    if message.startswith(b"."):
        message = b"." + message
    message = message.replace(b"\r\n.", b"\r\n..")
    if not message.endswith(b"\r\n"):
        message += b"\r\n"
    return message + b".\r\n"


class SMTPSession(asyncio.Protocol):
    """One greeted (and, as configured, TLS and AUTH) SMTP session; one transaction at a time."""

    def __init__(self, pipelining: bool, timeout: float) -> None:
        self.pipelining = pipelining
        self._timeout = timeout
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._lines: list[bytes] = []  # lines of the reply being received
        self._replies: list[Reply] = []
        self._waiter: asyncio.Future[None] | None = None
        self._wanted = 0
        self._lost: BaseException | None = None

    @classmethod
    def adopt(cls, client: aiosmtplib.SMTP) -> SMTPSession:
        """Take over the connection of `client`, connected and greeted; `client` is done with."""
        transport = client.transport
        if transport is None or transport.is_closing():
            raise SessionLost("the SMTP connection closed while it was being set up")
        session = cls(client.supports_extension("pipelining"), float(client.timeout or 60.0))
        session._transport = transport
        transport.set_protocol(session)
        return session

    @property
    def is_connected(self) -> bool:
        transport = self._transport
        return self._lost is None and transport is not None and not transport.is_closing()

    # --- asyncio.Protocol --------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        if len(self._buffer) > _MAX_REPLY:
            self._fail(SessionLost("the SMTP server sent an overlong reply"), close=True)
            return
        while (end := self._buffer.find(b"\n")) >= 0:
            line = bytes(self._buffer[: end + 1])
            del self._buffer[: end + 1]
            if len(line) < 4 or not line[:3].isdigit() or line[3:4] not in b" -\r\n":
                self._fail(SessionLost("the SMTP server sent a malformed reply"), close=True)
                return
            self._lines.append(line)
            if line[3:4] != b"-":  # the last line of a (possibly multi-line) reply
                text = " ".join(x[4:].strip().decode("utf-8", "replace") for x in self._lines)
                self._replies.append((int(line[:3]), text))
                self._lines = []
        waiter = self._waiter
        if waiter is not None and len(self._replies) >= self._wanted and not waiter.done():
            waiter.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(SessionLost("the SMTP server closed the connection"))
        self._transport = None

    def eof_received(self) -> bool:
        self._fail(SessionLost("the SMTP server closed the connection"))
        return False

    # --- transactions ------------------------------------------------------------------------

    async def send(self, envelope_from: str, recipients: list[str], message: bytes) -> Reply:
        """One mail transaction; the server's reply to the message (a 250) or ReplyError.

        Recipients refused while others were accepted are not an error: the message goes out,
        and retrying would duplicate it for the accepted ones.
        """
        commands = [b"MAIL FROM:<" + envelope_from.encode("ascii") + b">\r\n"]
        commands += [b"RCPT TO:<" + r.encode("ascii") + b">\r\n" for r in recipients]
        commands.append(b"DATA\r\n")
        replies = await self._envelope(commands)
        count = len(recipients)
        mail, rcpts, data = replies[0], replies[1 : count + 1], replies[count + 1 :]
        refusal: Reply | None = None
        if len(replies) < len(commands) and (data or mail[0] == 250):
            # The server hung up mid-envelope (a 421): its last reply says why.
            refusal = replies[-1]
        elif mail[0] != 250:
            refusal = mail
        elif not _accepted(rcpts):
            refusal = _worst_refusal(rcpts)
        elif data[0][0] != 354:
            refusal = data[0]
        if refusal is not None:
            if data and data[0][0] == 354:
                # The server took DATA although the transaction failed: end an empty message.
                self._write(b".\r\n")
                await self._read(1)
            raise ReplyError(refusal)
        self._write(wire_body(message))
        final = (await self._read(1))[0]
        if final[0] != 250:
            raise ReplyError(final)
        return final

    async def _envelope(self, commands: list[bytes]) -> list[Reply]:
        """Replies to MAIL, the RCPTs and DATA: pipelined, else as far as it is worth going."""
        if self.pipelining:
            self._write(b"".join(commands))
            replies = await self._read(len(commands), partial=True)
            if replies[-1][0] < 400 and len(replies) < len(commands):
                raise self._lost or SessionLost("the SMTP server closed the connection")
            return replies
        replies: list[Reply] = []
        last_rcpt = len(commands) - 2
        for i, command in enumerate(commands):
            self._write(command)
            replies += await self._read(1)
            if i == 0 and replies[0][0] != 250:
                break  # MAIL refused: the rest would be refused too
            if i == last_rcpt and not _accepted(replies[1:]):
                break  # no recipient accepted: no DATA
        return replies

    async def reset(self) -> bool:
        """RSET after a refused transaction; False if the session cannot be trusted any more."""
        if not self.is_connected:
            return False
        try:
            self._write(b"RSET\r\n")
            return (await self._read(1))[0][0] == 250
        except (OSError, TimeoutError):
            return False

    async def quit(self, timeout: float) -> None:
        try:
            if self.is_connected:
                self._timeout = timeout
                self._write(b"QUIT\r\n")
                await self._read(1)
        except (OSError, TimeoutError):
            pass  # closing anyway: a failed goodbye changes nothing
        finally:
            self.close()

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
            self._transport = None
        if self._lost is None:
            self._lost = SessionLost("the SMTP session was closed")

    # --- plumbing ----------------------------------------------------------------------------

    def _write(self, data: bytes) -> None:
        if not self.is_connected:
            raise self._lost or SessionLost("the SMTP session is closed")
        assert self._transport is not None
        self._transport.write(data)

    async def _read(self, count: int, *, partial: bool = False) -> list[Reply]:
        """The next `count` replies, within the session's timeout.

        partial: if the server hangs up first, the replies it did send (at least one).
        """
        if len(self._replies) < count:
            if self._lost is not None:
                if partial and self._replies:
                    return self._take(count)
                raise self._lost
            loop = asyncio.get_running_loop()
            self._waiter = waiter = loop.create_future()
            self._wanted = count
            timer = loop.call_later(self._timeout, self._timed_out)
            try:
                await waiter
            except SessionLost:
                if not (partial and self._replies):
                    raise
            finally:
                timer.cancel()
                self._waiter = None
        return self._take(count)

    def _take(self, count: int) -> list[Reply]:
        replies, self._replies = self._replies[:count], self._replies[count:]
        return replies

    def _timed_out(self) -> None:
        # The replies still owed would be mistaken for the next transaction's: never reuse.
        self._fail(TimeoutError(f"no SMTP reply within {self._timeout:g}s"), close=True)

    def _fail(self, exc: BaseException, *, close: bool = False) -> None:
        if self._lost is None:
            self._lost = exc
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)
        if close:
            self.close()


def _accepted(rcpts: list[Reply]) -> bool:
    return any(code in (250, 251) for code, _ in rcpts)


def _worst_refusal(rcpts: list[Reply]) -> Reply:
    """The reply that decides a transaction no recipient of which was accepted.

    One temporarily refused recipient makes a later retry worth it.
    """
    transient = [r for r in rcpts if 400 <= r[0] < 500]
    return transient[0] if transient else rcpts[0]
