"""Integers past 64 bits in a request's JSON: refused, naming their field, rather than kept as
floats (the JSON parser reads them as floats, which would change their value silently).

A body is read a second time, exactly, only when it holds a run of 19 digits. A single body is
refused whole (`check_integers`); a batch's items one by one (`read_exact` and `oversized`
on each item, core/batch.py).
"""

from __future__ import annotations

import json
import math
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import orjson

from txmsg.core.errors import DomainError, invalid, pointer_of

# Any run of 19 digits may be an integer past 64 bits (2**63 has 19): only then is the body
# read a second time, exactly. Digits inside strings only cost that second reading.
_LONG_DIGITS = re.compile(rb"\d{19}")
_LOW, _HIGH = -(2**63), 2**63 - 1
_U64 = 2**64 - 1  # the fast parser reads integers up to this one exactly
# Said of an integer past 64 bits wherever it stands: before any field's own range is checked
# (a channel cap's 1 to 1,000,000, a ctx field's 64 bits), so it states none that the field's
# own could contradict.
RANGE_TEXT = "is out of range (an integer past 64 bits)"


class _Oversized:
    """An integer of more than 19 digits, past 64 bits whatever its digits (not converted:
    Python refuses to convert more than 4,300); its text as written."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text


# orjson reads 1,024 levels of nesting; Python's parser one a frame of the recursion limit
# (1,000, some of them already used by the caller).
_FAST_PARSER_DEPTH = 1024


@contextmanager
def _as_deep_as_the_fast_parser() -> Iterator[None]:
    """Python's parser reads any body the fast parser read: the exact reading of a batch
    holding one item nested too deeply must not refuse the whole batch. The event loop's
    thread is the only one reading bodies."""
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(limit + _FAST_PARSER_DEPTH + 64)
    try:
        yield
    finally:
        sys.setrecursionlimit(limit)


def _integer(text: str) -> int | _Oversized:
    return _Oversized(text) if len(text.lstrip("-")) > 19 else int(text)


def read_exact(raw: bytes) -> Any | None:
    """The JSON text `raw` (already parsed once, so valid) read with its integers exact, or
    None when it holds no integer that may be past 64 bits."""
    if _LONG_DIGITS.search(raw) is None:
        return None
    try:
        with _as_deep_as_the_fast_parser():
            return json.loads(raw, parse_int=_integer)
    except RecursionError:  # not expected: a 400 all the same, never a 500
        raise invalid("body", "is nested too deeply") from None
    except ValueError:  # not expected of a body orjson read: a 400 all the same, never a 500
        raise invalid("body", "could not be read exactly") from None


def read_with_long_integers_as_text(raw: bytes) -> Any | None:
    """The JSON text `raw`, which the fast parser refused, read with its integers of more
    than 19 digits as strings (the fast parser refuses one too long for a double, 309 digits
    and more, while a refusal naming it is wanted: a batch's, of its item alone); None when
    it is not valid JSON for another reason, by the fast parser's rules (UTF-8 only, no NaN
    nor infinity, no lone surrogate). One reading, whatever their number."""
    if _LONG_DIGITS.search(raw) is None:
        return None
    try:
        with _as_deep_as_the_fast_parser():
            value = json.loads(
                raw.decode(),
                parse_int=lambda text: text if len(text.lstrip("-")) > 19 else int(text),
                parse_float=_finite,
                parse_constant=_no_constant,
            )
            # Read again by the fast parser: what else it refuses (a lone surrogate), it
            # refuses.
            return orjson.loads(json.dumps(value))
    except RecursionError:  # deeper still than the fast parser reads: a 400, never a 500
        raise invalid("body", "is nested too deeply") from None
    except ValueError:  # not UTF-8 or not JSON (JSONDecodeError too), or not finite
        return None


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} is too large for a double")
    return value


def _no_constant(text: str) -> float:
    raise ValueError(f"{text} is not JSON")


def check_integers(raw: bytes) -> None:
    """A 400 naming the first integer of the JSON text `raw` outside 64 bits, if any."""
    found = oversized(read_exact(raw))
    if found is not None:
        raise out_of_range(found)


def out_of_range(found: tuple[str, str]) -> DomainError:
    """The 400 of an integer outside 64 bits, at `found` (oversized's answer)."""
    where, pointer = found
    return invalid(where or "body", RANGE_TEXT, pointer=pointer)


def oversized(value: Any) -> tuple[str, str] | None:
    """Where the first integer of `value` outside 64 bits is: its field's name ("" at the
    root) and its JSON pointer; or None."""
    return next(((where, pointer_of(parts)) for where, parts, _ in _outside(value)), None)


def long_integers(exact: Any) -> list[tuple[str, str]]:
    """The integers of an exact reading that the fast parser reads inexactly (past its
    -2**63 to 2**64 - 1: as floats, or as text), where each is and as written: what its
    reading does not tell apart, and a fingerprint of the body must."""
    return [
        (pointer_of(parts), text)
        for _, parts, text in _outside(exact)
        if len(text.lstrip("-")) > 20 or not _LOW <= int(text) <= _U64
    ]


_Place = tuple[str, tuple[str | int, ...]]  # a field's name, and its keys and indexes


def _outside(value: Any) -> Iterator[tuple[str, tuple[str | int, ...], str]]:
    """Each integer of `value` outside 64 bits, in document order: its field's name, its
    keys and indexes, and its text."""
    stack: list[tuple[_Place, Any]] = [(("", ()), value)]
    while stack:
        (where, parts), value = stack.pop()
        if isinstance(value, _Oversized):
            yield where, parts, value.text
        elif isinstance(value, int) and not isinstance(value, bool):
            if not _LOW <= value <= _HIGH:
                yield where, parts, str(value)
        elif isinstance(value, dict):
            items: list[tuple[_Place, Any]] = [
                ((f"{where}.{k}" if where else str(k), (*parts, k)), v) for k, v in value.items()
            ]
            stack.extend(reversed(items))  # the first one on top
        elif isinstance(value, list):
            stack.extend(
                ((f"{where}[{i}]", (*parts, i)), v) for i, v in reversed(list(enumerate(value)))
            )
