"""Integers past 64 bits in a request's JSON: refused, naming their field, rather than kept as
floats (the JSON parser reads them as floats, which would change their value silently).

A body is read a second time, exactly, only when it holds a run of 19 digits. A single body is
refused whole (`check_integers`); a batch's items one by one (`read_exact` and `oversized`
on each item, core/batch.py).
"""

from __future__ import annotations

import json
import re
from typing import Any

from txmsg.core.errors import invalid

# Any run of 19 digits may be an integer past 64 bits (2**63 has 19): only then is the body
# read a second time, exactly. Digits inside strings only cost that second reading.
_LONG_DIGITS = re.compile(rb"\d{19}")
_LOW, _HIGH = -(2**63), 2**63 - 1
RANGE_TEXT = "must be an integer from -9223372036854775808 to 9223372036854775807"


class _Oversized:
    """An integer of more than 19 digits, past 64 bits whatever its digits (none converted:
    Python refuses to convert more than 4,300)."""


_TOO_LONG = _Oversized()


def _integer(text: str) -> int | _Oversized:
    return _TOO_LONG if len(text.lstrip("-")) > 19 else int(text)


def read_exact(raw: bytes) -> Any | None:
    """The JSON text `raw` (already parsed once, so valid) read with its integers exact, or
    None when it holds no integer that may be past 64 bits."""
    if _LONG_DIGITS.search(raw) is None:
        return None
    try:
        return json.loads(raw, parse_int=_integer)
    except RecursionError:  # Python's parser nests less deeply than orjson's 1,024
        raise invalid("body", "is nested too deeply") from None
    except ValueError:  # not expected of a body orjson read: a 400 all the same, never a 500
        raise invalid("body", "could not be read exactly") from None


# An integer token of more than 19 digits (not a number's integral part).
_LONG_INTEGER = re.compile(r"-?\d{20,}(?![.eE\d])")
# How many integers too long for a double one body may hold and still be read.
MAX_TOO_LONG = 32


def with_long_integers_as_text(text: str, at: int) -> str | None:
    """`text`, refused by the JSON parser at `at`, with the integer there written as a
    string: the parser refuses one too long for a double (309 digits and more), while a
    refusal naming it is wanted (a batch's: of its item alone). None when there is none."""
    match = _LONG_INTEGER.match(text, at)
    if match is None:
        return None
    return f'{text[:at]}"{match.group()}"{text[match.end() :]}'


def check_integers(raw: bytes) -> None:
    """A 400 naming the first integer of the JSON text `raw` outside 64 bits, if any."""
    where = oversized(read_exact(raw))
    if where is not None:
        raise invalid(where or "body", RANGE_TEXT)


def oversized(value: Any, path: str = "") -> str | None:
    """Where the first integer of `value` outside 64 bits is (`path` for `value` itself, ""
    at the root), or None."""
    stack: list[tuple[str, Any]] = [(path, value)]
    while stack:
        where, value = stack.pop()
        if isinstance(value, _Oversized):
            return where
        if isinstance(value, int) and not isinstance(value, bool):
            if not _LOW <= value <= _HIGH:
                return where
        elif isinstance(value, dict):
            items = [(f"{where}.{k}" if where else str(k), v) for k, v in value.items()]
            stack.extend(reversed(items))  # the first one on top
        elif isinstance(value, list):
            stack.extend((f"{where}[{i}]", v) for i, v in reversed(list(enumerate(value))))
    return None
