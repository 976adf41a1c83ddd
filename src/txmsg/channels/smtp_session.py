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
from typing import cast

import aiosmtplib

# Limits on what a server may send: a line, and a (multi-line) reply. Past them it is not SMTP,
# and the session is dropped rather than buffered without end.
_MAX_LINE = 8 * 1024
_MAX_REPLY = 64 * 1024
_BARE_LINE_END = re.compile(rb"\r\n|\r|\n")
_CLOSED = "the SMTP server closed the connection"

Reply = tuple[int, str]


class ReplyError(Exception):
    """The server refused the transaction: `reply` is its (code, text), a 4xx or a 5xx."""

    def __init__(self, reply: Reply) -> None:
        super().__init__(f"{reply[0]} {reply[1]}")
        self.reply = reply


class SessionLost(ConnectionError):
    """The connection closed, or the server said something a compliant server would not."""


def wire_body(message: bytes) -> bytes:
    """`message` as DATA content: CRLF line ends, leading dots doubled, ending in CRLF.CRLF."""
    if message.count(b"\n") != message.count(b"\r\n") or message.count(b"\r") != message.count(
        b"\r\n"
    ):
        message = _BARE_LINE_END.sub(b"\r\n", message)
    if message.startswith(b"."):
        message = b"." + message
    message = message.replace(b"\r\n.", b"\r\n..")
    if message and not message.endswith(b"\r\n"):
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
        self._lines_size = 0
        self._replies: list[Reply] = []
        self._waiter: asyncio.Future[None] | None = None
        self._wanted = 0
        self._lost: BaseException | None = None

    @classmethod
    def adopt(cls, client: aiosmtplib.SMTP) -> SMTPSession:
        """Take over the connection of `client`, connected and greeted; `client` is done with."""
        transport = client.transport
        if transport is None or transport.is_closing():
            raise SessionLost(_CLOSED)
        timeout = client.timeout if client.timeout is not None else 60.0
        session = cls(client.supports_extension("pipelining"), float(timeout))
        # aiosmtplib types it as a BaseTransport; it is a stream transport, asyncio's or
        # uvloop's (which does not subclass asyncio.Transport, so isinstance cannot narrow it).
        session._transport = cast(asyncio.Transport, transport)
        transport.set_protocol(session)
        return session

    @property
    def is_connected(self) -> bool:
        transport = self._transport
        return self._lost is None and transport is not None and not transport.is_closing()

    @property
    def is_clean(self) -> bool:
        """Connected, and nothing unread: a stray reply would be paired with the next command."""
        return self.is_connected and not (self._replies or self._lines or self._buffer)

    # --- asyncio.Protocol --------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        while (end := self._buffer.find(b"\n")) >= 0:
            line = bytes(self._buffer[: end + 1])
            del self._buffer[: end + 1]
            if len(line) < 4 or not line[:3].isdigit() or line[3:4] not in b" -\r\n":
                self._fail(SessionLost("the SMTP server sent a malformed reply"), close=True)
                return
            self._lines.append(line)
            self._lines_size += len(line)
            if line[3:4] != b"-":  # the last line of a (possibly multi-line) reply
                text = " ".join(x[4:].strip().decode("utf-8", "replace") for x in self._lines)
                self._replies.append((int(line[:3]), text))
                self._lines, self._lines_size = [], 0
        if len(self._buffer) > _MAX_LINE or self._lines_size > _MAX_REPLY:
            self._fail(SessionLost("the SMTP server sent an overlong reply"), close=True)
            return
        waiter = self._waiter
        if waiter is not None and len(self._replies) >= self._wanted and not waiter.done():
            waiter.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(SessionLost(_CLOSED))
        self._transport = None

    def eof_received(self) -> bool:
        self._fail(SessionLost(_CLOSED))
        return False

    # --- transactions ------------------------------------------------------------------------

    async def send(self, envelope_from: str, recipients: list[str], message: bytes) -> Reply:
        """One mail transaction; the server's 2xx reply to the message, else ReplyError.

        Recipients refused while others were accepted are not an error: the message goes out,
        and retrying would duplicate it for the accepted ones.
        """
        commands = [b"MAIL FROM:<" + envelope_from.encode("ascii") + b">\r\n"]
        commands += [b"RCPT TO:<" + r.encode("ascii") + b">\r\n" for r in recipients]
        commands.append(b"DATA\r\n")
        replies, hung_up = await self._envelope(commands)
        count = len(recipients)
        mail, rcpts, data = replies[0], replies[1 : count + 1], replies[count + 1 :]
        closing = next((r for r in replies if r[0] == 421), None)
        if closing is not None:
            raise ReplyError(closing)  # the server's own reason for closing the channel
        if _positive(mail) and hung_up:
            # Only a 421 explains a hang-up; any other refusal may not be the whole story.
            raise SessionLost(_CLOSED)
        refusal = _refusal(mail, rcpts, data)
        if data and data[0][0] == 354 and refusal is not None:
            # The server took DATA although the transaction failed: end an empty message.
            self._write(b".\r\n")
            await self._read(1)
        if refusal is not None:
            raise ReplyError(refusal)
        self._write(wire_body(message))
        final = (await self._read(1))[0]
        if not _positive(final):
            raise ReplyError(_checked(final))
        return final

    async def _envelope(self, commands: list[bytes]) -> tuple[list[Reply], bool]:
        """Replies to MAIL, the RCPTs and DATA, as far as it is worth going; and whether the
        server hung up before answering them all."""
        if self.pipelining:
            self._write(b"".join(commands))
            pipelined = await self._read(len(commands), partial=True)
            return pipelined, len(pipelined) < len(commands)
        replies: list[Reply] = []
        last_rcpt = len(commands) - 2
        for i, command in enumerate(commands):
            self._write(command)
            replies += await self._read(1)
            if replies[-1][0] == 421:
                break  # the server is closing the channel
            if i == 0 and not _positive(replies[0]):
                break  # MAIL refused: the rest would be refused too
            if i == last_rcpt and not _accepted(replies[1:]):
                break  # no recipient accepted: no DATA
        return replies, False

    async def reset(self) -> bool:
        """RSET after a refused transaction; False if the session cannot be trusted any more."""
        if not self.is_connected:
            return False
        try:
            self._write(b"RSET\r\n")
            return (await self._read(1))[0][0] == 250 and self.is_clean
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
            raise self._gone()
        assert self._transport is not None
        self._transport.write(data)

    async def _read(self, count: int, *, partial: bool = False) -> list[Reply]:
        """The next `count` replies, within the session's timeout.

        partial: if the server hangs up first, the replies it did send (at least one).
        """
        assert self._waiter is None, "one transaction at a time"
        if len(self._replies) < count:
            if self._lost is not None:
                if partial and self._replies:
                    return self._take(count)
                raise self._gone()
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

    def _gone(self) -> BaseException:
        """A fresh error for a session already lost (re-raising one object grows its traceback)."""
        lost = self._lost
        if isinstance(lost, TimeoutError):
            return TimeoutError(str(lost))
        error = SessionLost(str(lost) if lost is not None else "the SMTP session is closed")
        error.__cause__ = lost
        return error

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


def _positive(reply: Reply) -> bool:
    return 200 <= reply[0] < 300


def _accepted(rcpts: list[Reply]) -> bool:
    return any(_positive(r) for r in rcpts)


def _checked(reply: Reply) -> Reply:
    """A refusal is a 4xx or 5xx; any other reply where one was due is not SMTP as we know it."""
    if not 400 <= reply[0] < 600:
        raise SessionLost(f"unexpected SMTP reply {reply[0]}")
    return reply


def _refusal(mail: Reply, rcpts: list[Reply], data: list[Reply]) -> Reply | None:
    """What refused the envelope, if anything; SessionLost for replies out of place."""
    if not _positive(mail):
        return _checked(mail)
    if not _accepted(rcpts):
        # One temporarily refused recipient makes a later retry worth it.
        refusals = [_checked(r) for r in rcpts]
        return next((r for r in refusals if r[0] < 500), refusals[0])
    if not data:
        raise SessionLost(_CLOSED)
    if data[0][0] != 354:
        return _checked(data[0])
    return None
