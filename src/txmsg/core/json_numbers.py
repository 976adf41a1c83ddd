"""Values of a request's JSON that no field may hold, refused naming their field: integers
past 64 bits (the JSON parser reads them as floats, which would change their value silently),
numbers past a double's range (valid JSON the fast parser refuses: read as infinity), and
strings holding a lone surrogate (`"\\ud800"`: valid JSON, not Unicode text).

A body is read a second time, exactly, only when it holds a run of 19 digits or the fast
parser refused it. A single body is refused whole (`check_integers`); a batch's items one by
one (`read_exact` and `oversized` on each item, core/batch.py).
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


NOT_A_DOUBLE = "is a number past the range of a double (about 1.8e308)"
NOT_UNICODE = "is not Unicode text: it holds a lone surrogate"
NOT_UNICODE_NAME = "has a name that is not Unicode text: it holds a lone surrogate"


class _Oversized:
    """An integer of more than 19 digits, past 64 bits whatever its digits (not converted:
    Python refuses to convert more than 4,300); its text as written."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text


class _Infinite:
    """A number too large for a double (`1e999`), as written."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text


def _float(text: str) -> float | _Infinite:
    value = float(text)
    return value if math.isfinite(value) else _Infinite(text)


def _float_or_text(text: str) -> float | str:
    """A number of the text the fast parser refused: past a double's range, as written."""
    value = _float(text)
    return text if isinstance(value, _Infinite) else value


def _not_unicode(text: str) -> bool:
    """Whether `text` holds a lone surrogate (JSON's `\\ud800` escape reads as one)."""
    if text.isascii():
        return False
    try:
        text.encode()
    except UnicodeEncodeError:
        return True
    return False


def _shown(name: str) -> str:
    """A key as a field's name in a problem: its lone surrogates escaped (a problem is JSON)."""
    return name.encode("utf-8", "backslashreplace").decode() if _not_unicode(name) else name


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


def read_exact(raw: bytes, *, refused_by_the_fast_parser: bool = False) -> Any | None:
    """The JSON text `raw` (valid: parsed once already) read with its integers exact and its
    numbers past a double's range marked, or None when it holds no integer that may be past
    64 bits and the fast parser read it (it refuses those numbers and lone surrogates)."""
    if not refused_by_the_fast_parser and _LONG_DIGITS.search(raw) is None:
        return None
    try:
        with _as_deep_as_the_fast_parser():
            return json.loads(raw, parse_int=_integer, parse_float=_float)
    except RecursionError:  # not expected: a 400 all the same, never a 500
        raise invalid("body", "is nested too deeply") from None
    except ValueError:  # not expected of a body orjson read: a 400 all the same, never a 500
        raise invalid("body", "could not be read exactly") from None


def read_with_long_integers_as_text(raw: bytes) -> Any | None:
    """The JSON text `raw`, which the fast parser refused, read with what it refuses of valid
    JSON as strings: integers of more than 19 digits (one too long for a double, 309 digits
    and more), numbers past a double's range, and strings holding a lone surrogate (escaped),
    whose refusal naming them is wanted (a batch's, of its item alone: `read_exact` finds
    them). None when it is not valid JSON (UTF-8 only, no NaN nor Infinity). One reading."""
    try:
        with _as_deep_as_the_fast_parser():
            value = json.loads(
                raw.decode(),
                parse_int=lambda text: text if len(text.lstrip("-")) > 19 else int(text),
                parse_float=_float_or_text,
                parse_constant=_no_constant,
            )
    except RecursionError:  # deeper still than the fast parser reads: a 400, never a 500
        raise invalid("body", "is nested too deeply") from None
    except ValueError:  # not UTF-8 or not JSON (JSONDecodeError too)
        return None
    try:
        with _as_deep_as_the_fast_parser():
            # Read again by the fast parser, its lone surrogates escaped: what it still
            # refuses of this valid JSON is its nesting (past 1,024 levels).
            return orjson.loads(json.dumps(_escape_surrogates(value)))
    except (RecursionError, ValueError):
        raise invalid("body", "is nested too deeply") from None


def _escape_surrogates(value: Any) -> Any:
    """`value` with its strings' (and keys') lone surrogates escaped."""
    if isinstance(value, str):
        return _shown(value)
    if isinstance(value, dict):
        return {_shown(k): _escape_surrogates(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_escape_surrogates(v) for v in value]
    return value


def _no_constant(text: str) -> float:
    raise ValueError(f"{text} is not JSON")


def check_integers(raw: bytes, *, refused_by_the_fast_parser: bool = False) -> None:
    """A 400 naming the first value of the JSON text `raw` that no field may hold (an
    integer outside 64 bits, a number past a double's, a lone surrogate), if any."""
    exact = read_exact(raw, refused_by_the_fast_parser=refused_by_the_fast_parser)
    found = oversized(exact)
    if found is not None:
        raise out_of_range(found)


Found = tuple[str, str, str]  # a refused value's field name, JSON pointer, and why


def out_of_range(found: Found) -> DomainError:
    """The 400 of a value no field may hold, at `found` (oversized's answer)."""
    where, pointer, detail = found
    return invalid(where or "body", detail, pointer=pointer)


def oversized(value: Any) -> Found | None:
    """Where the first value of `value` that no field may hold is: its field's name ("" at
    the root), its JSON pointer, and why; or None."""
    return next(
        ((where, pointer_of(parts), detail) for where, parts, _, detail in _outside(value)), None
    )


def inexact_values(exact: Any) -> list[tuple[str, str]]:
    """The values of an exact reading that the fast parser's reading (or the lenient one's)
    holds inexactly, where each is and as written: integers past its -2**63 to 2**64 - 1 (as
    floats, or as text), numbers past a double's range and lone surrogates (as text). What
    its reading does not tell apart, and a fingerprint of the body must."""
    return [
        (pointer_of(parts), text if detail == RANGE_TEXT else f"{detail}: {text}")
        for _, parts, text, detail in _outside(exact)
        if detail != RANGE_TEXT or len(text.lstrip("-")) > 20 or not _LOW <= int(text) <= _U64
    ]


_Place = tuple[str, tuple[str | int, ...]]  # a field's name, and its keys and indexes


class _BadName:
    """Stands for the value of a key holding a lone surrogate: the key is refused."""

    __slots__ = ()


def _outside(value: Any) -> Iterator[tuple[str, tuple[str | int, ...], str, str]]:
    """Each value of `value` that no field may hold, in document order: its field's name, its
    keys and indexes, its text, and why (`RANGE_TEXT` for an integer outside 64 bits)."""
    stack: list[tuple[_Place, Any]] = [(("", ()), value)]
    while stack:
        (where, parts), value = stack.pop()
        if isinstance(value, dict | list):
            stack.extend(reversed(_children(where, parts, value)))  # the first one on top
            continue
        refused = _refusal(value)
        if refused is not None:
            yield where, parts, *refused


def _refusal(value: Any) -> tuple[str, str] | None:
    """A leaf value's text and why no field may hold it; None for one that any may."""
    if isinstance(value, _Oversized):
        return value.text, RANGE_TEXT
    if isinstance(value, _Infinite):
        return value.text, NOT_A_DOUBLE
    if isinstance(value, int) and not isinstance(value, bool):
        return None if _LOW <= value <= _HIGH else (str(value), RANGE_TEXT)
    if isinstance(value, str) and _not_unicode(value):
        return _shown(value), NOT_UNICODE
    if isinstance(value, _BadName):
        return "", NOT_UNICODE_NAME
    return None


def _children(
    where: str, parts: tuple[str | int, ...], value: dict[str, Any] | list[Any]
) -> list[tuple[_Place, Any]]:
    """The members of an object or an array, each with its place."""
    if isinstance(value, list):
        return [((f"{where}[{i}]", (*parts, i)), v) for i, v in enumerate(value)]
    children: list[tuple[_Place, Any]] = []
    for key, member in value.items():
        name = _shown(key)
        # A name holding a lone surrogate is what is refused there, whatever its value.
        held = _BadName() if name is not key else member
        children.append(((f"{where}.{name}" if where else name, (*parts, name)), held))
    return children
