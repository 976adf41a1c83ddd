"""SMS text facts: encoding (GSM-7 or UCS-2) and segment count, as carriers count them.

A text that fits the GSM 03.38 alphabet is sent 7-bit: 160 characters in one segment, 153 per
segment when split (the rest is the concatenation header); characters of the extension table
take two septets and are never split across segments. Anything else is sent UCS-2: 70 UTF-16
code units, 67 per segment when split; a surrogate pair is never split either.

Twilio refuses a body longer than 1,600 characters (error 21617), counted in UTF-16 code units:
an emoji outside the Basic Multilingual Plane counts two, an extension character one.
"""

from __future__ import annotations

from dataclasses import dataclass

GSM7 = "GSM-7"
UCS2 = "UCS-2"

_GSM_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM_EXTENSION = frozenset("\f^{}\\[~]|€")

TWILIO_MAX_CHARACTERS = 1600
"""The longest body Twilio takes; a longer one is refused (error 21617)."""


@dataclass(frozen=True, slots=True)
class SmsInfo:
    encoding: str
    segments: int
    units: int  # septets (GSM-7) or UTF-16 code units (UCS-2): what segments hold
    characters: int  # UTF-16 code units: what Twilio's 1,600-character limit counts


def _pack(sizes: list[int], single: int, multi: int) -> int:
    """Segments needed for characters of the given unit sizes."""
    total = sum(sizes)
    if total <= single:
        return 1 if total else 0
    segments, used = 1, 0
    for size in sizes:
        if used + size > multi:  # a character never straddles two segments
            segments += 1
            used = 0
        used += size
    return segments


def characters(text: str) -> int:
    """The text's length as Twilio counts it against `TWILIO_MAX_CHARACTERS`."""
    return len(text) + sum(1 for c in text if ord(c) > 0xFFFF)


def analyse(text: str) -> SmsInfo:
    count = characters(text)
    if all(c in _GSM_BASIC or c in _GSM_EXTENSION for c in text):
        sizes = [2 if c in _GSM_EXTENSION else 1 for c in text]
        return SmsInfo(GSM7, _pack(sizes, 160, 153), sum(sizes), count)
    sizes = [2 if ord(c) > 0xFFFF else 1 for c in text]
    return SmsInfo(UCS2, _pack(sizes, 70, 67), sum(sizes), count)


def sms_text(rendered: str) -> str:
    """The text sent for a rendered body: surrounding blank lines would cost segments."""
    return rendered.strip()
