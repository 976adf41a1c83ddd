"""Fast, correct MIME assembly for transactional email.

`email.message.EmailMessage` under the default policy re-parses every header it is given and
dominates the send profile. Our messages always have the same shape (multipart/alternative of
text + HTML, UTF-8), so they are assembled as bytes here: headers RFC 2047-encoded when not
ASCII (encoded-words of at most 75 characters, one a line), folded at 78 characters where a
word allows, bodies quoted-printable (which also guarantees the `=_` boundary never occurs in a
body), CRLF line endings, no line over 998 octets. Tests parse the output with the standard
library's strict parser to prove it well formed.
"""

from __future__ import annotations

import base64
import binascii
import random
import re
from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime, formataddr

# Control characters (CR, LF, NUL, ...) in a header value could inject headers: they become spaces.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")
# RFC 5322's recommended line length (998 is the limit); RFC 2047's longest encoded-word.
_LINE = 78
_WORD = 75
_WORD_OVERHEAD = len("=?utf-8?b??=")
# An ASCII header line longer than this (a word that cannot be folded) is encoded instead.
_MAX_PLAIN_HEADER = 900
# What folding keeps together: a word with the spaces before it (a line never starts blank).
_FOLDABLE = re.compile(r" *[^ ]+")


def clean_header_value(value: str) -> str:
    return _CONTROL.sub(" ", value).strip()


def _word_bytes(room: int) -> int:
    """The UTF-8 bytes one base64 encoded-word carries in `room` characters (a character's
    four at least)."""
    return max(4, (min(room, _WORD) - _WORD_OVERHEAD) // 4 * 3)


_CONTINUED_WORD_BYTES = _word_bytes(_LINE - 1)  # 45: after a continuation line's space


def _encoded_words(value: str, used: int) -> list[str]:
    """`value` as RFC 2047 encoded-words of whole characters, one a line: the first fits in
    the line after `used` characters (the header's name), the others in continuation lines."""
    words: list[str] = []
    chunk: list[str] = []
    size = 0
    limit = _word_bytes(_LINE - used)
    for char in value:
        n = len(char.encode("utf-8"))
        if size + n > limit and chunk:
            words.append("".join(chunk))
            chunk, size, limit = [], 0, _CONTINUED_WORD_BYTES
        chunk.append(char)
        size += n
    if chunk:
        words.append("".join(chunk))
    return [
        "=?utf-8?b?" + base64.b64encode(w.encode("utf-8")).decode("ascii") + "?=" for w in words
    ]


def _fold(text: str, used: int) -> str | None:
    """ASCII `text` folded before spaces (unfolding, as DKIM's relaxed canonicalization and
    every reader do, gives it back) so that its lines, the first after `used` characters,
    stay within 78 where a word allows; None when a line would still be too long."""
    if used + len(text) <= _LINE:
        return text
    lines: list[str] = []
    line = ""
    room = _LINE - used
    for word in _FOLDABLE.findall(text):
        if line and len(line) + len(word) > room:
            lines.append(line)
            line, room = "", _LINE
        line += word
    lines.append(line)
    if max(map(len, lines)) > _MAX_PLAIN_HEADER:
        return None
    return "\r\n".join(lines)


def _plain(value: str) -> bool:
    """Whether a header value may go as written: ASCII that no reader decodes."""
    return value.isascii() and "=?" not in value


def encode_header_value(value: str, used: int = len("Subject: ")) -> str:
    """An unstructured header value (e.g. Subject) safe to put on the wire after `used`
    characters of its line (its name and ": "), folded at 78 characters where it can be."""
    value = clean_header_value(value)
    if _plain(value):
        folded = _fold(value, used)
        if folded is not None:
            return folded
    return "\r\n ".join(_encoded_words(value, used))


def format_address(name: str | None, address: str, used: int = len("From: ")) -> str:
    """`Name <addr>` after `used` characters of its line: the name quoted as needed, or, when
    not plain ASCII (or when it would read as an encoded-word), RFC 2047-encoded as the
    Subject is; folded at 78 characters where it can be."""
    name = clean_header_value(name or "")
    if not name:
        return address
    if _plain(name):
        folded = _fold(formataddr((name, address)), used)
        if folded is not None:
            return folded
    words = _encoded_words(name, used)
    last_line = (used if len(words) == 1 else 1) + len(words[-1])
    addr = f"<{address}>"
    # The address goes on a line of its own when it does not fit after the name.
    gap = " " if last_line + 1 + len(addr) <= _LINE else "\r\n "
    return "\r\n ".join(words) + gap + addr


def _qp(text: str) -> bytes:
    data = text.replace("\r\n", "\n").replace("\r", "\n").encode("utf-8")
    encoded = binascii.b2a_qp(data, quotetabs=False, istext=True, header=False)
    return encoded.replace(b"\n", b"\r\n")


_TEXT_PART = b'Content-Type: text/plain; charset="utf-8"\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n'  # noqa: E501
_HTML_PART = b'Content-Type: text/html; charset="utf-8"\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n'  # noqa: E501


@dataclass(frozen=True, slots=True)
class Sender:
    """The parts of a message fixed by the channel configuration: prepared once, reused."""

    from_header: str
    reply_to_header: str | None
    envelope_from: str
    domain: str

    @classmethod
    def build(cls, from_email: str, from_name: str | None, reply_to: str | None) -> Sender:
        return cls(
            from_header=format_address(from_name, from_email),
            reply_to_header=format_address(None, reply_to) if reply_to else None,
            envelope_from=from_email,
            domain=from_email.rpartition("@")[2] or "localhost",
        )


_last_date: tuple[datetime, str] | None = None


def _date_header(date: datetime) -> str:
    """RFC 5322 date; the last one is kept, since a busy sender stamps many a second."""
    global _last_date
    date = date.replace(microsecond=0)
    last = _last_date
    if last is not None and last[0] == date and last[0].tzinfo == date.tzinfo:
        return last[1]
    text = format_datetime(date)
    _last_date = (date, text)
    return text


def build_email(
    sender: Sender,
    to: str,
    subject: str,
    text: str | None,
    html: str | None,
    *,
    message_id: str,
    date: datetime,
    extra_headers: tuple[tuple[str, str], ...] = (),
) -> bytes:
    """The whole RFC 5322 message as bytes, ready for SMTP DATA."""
    head = [
        "From: " + sender.from_header,
        "To: " + to,
    ]
    if sender.reply_to_header:
        head.append("Reply-To: " + sender.reply_to_header)
    head.append("Subject: " + encode_header_value(subject))
    head.append("Date: " + _date_header(date))
    head.append(f"Message-ID: <{message_id}@{sender.domain}>")
    head.append("MIME-Version: 1.0")
    for name, value in extra_headers:
        head.append(f"{name}: {encode_header_value(value, len(name) + 2)}")
    has_text = bool(text)
    has_html = bool(html)
    if has_text and has_html:
        # Quoted-printable bodies never hold "=_", so the boundary need not be unpredictable,
        # and the non-cryptographic generator costs no system call.
        boundary = f"=_txmsg_{random.getrandbits(64):016x}"
        head.append(f'Content-Type: multipart/alternative; boundary="{boundary}"')
        delim = b"--" + boundary.encode("ascii")
        parts = [
            "\r\n".join(head).encode("ascii"),
            b"\r\n\r\n",
            delim,
            b"\r\n",
            _TEXT_PART,
            _qp(text or ""),
            b"\r\n",
            delim,
            b"\r\n",
            _HTML_PART,
            _qp(html or ""),
            b"\r\n",
            delim,
            b"--\r\n",
        ]
        return b"".join(parts)
    if has_html:
        part, body = _HTML_PART, html or ""
    else:
        part, body = _TEXT_PART, text or ""
    return b"".join(["\r\n".join(head).encode("ascii"), b"\r\n", part, _qp(body), b"\r\n"])
