"""Small typed readers for JSON request bodies: each names the field it rejects."""

from __future__ import annotations

import re
from typing import Any

import orjson

from txmsg.core.errors import invalid, pointer_of

_JSON_TYPE = {
    str: "a string",
    int: "an integer",
    bool: "a boolean",
    dict: "an object",
    list: "an array",
}


# What the spec's patterns count as white space (`\s` of ECMA-262, JSON Schema's regular
# expressions), for "not blank": Python's `str.strip()` also strips U+001C-U+001F and U+0085,
# which such a pattern takes as text, and keeps U+FEFF, which it takes as white space.
ECMA_WHITE_SPACE = (
    "\t\n\v\f\r \u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007"
    "\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
)


def blank(value: str) -> bool:
    """Whether `value` has nothing but white space (where the spec's pattern `\\S` fails)."""
    return not value.strip(ECMA_WHITE_SPACE)


def ascii_digits(text: str) -> bool:
    """Whether `text` is one or more of the ASCII digits 0-9 and nothing else. `str.isdigit`
    also takes other scripts' digits (U+0663 ARABIC-INDIC DIGIT THREE, fullwidth ones) and
    superscripts (U+00B2), which `int()` reads or refuses; the spec's `[0-9]` means ASCII."""
    return text.isascii() and text.isdigit()


def query_int(raw: str, name: str, low: int, high: int) -> int:
    """A query or path parameter's integer from `low` to `high`: ASCII digits only (no sign,
    no space, no other numerals), never more of them than the bound has (converting
    thousands of digits is refused by Python itself); a 400 naming `name` otherwise."""
    digits = raw.lstrip("0") or "0"
    if not ascii_digits(raw) or len(digits) > len(str(high)) or not low <= int(digits) <= high:
        raise invalid(name, f"must be an integer from {low} to {high}", in_header=True)
    return int(digits)


# A JSON-escaped NUL: \u0000 preceded by an even number of backslashes.
_NUL_ESCAPE = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")


def check_storable(value: Any, name: str) -> None:
    """JSON data we store: not nested past what the serializer takes, no NUL character."""
    try:
        encoded = orjson.dumps(value)
    except orjson.JSONEncodeError:
        raise invalid(name, "is nested too deeply") from None
    if _NUL_ESCAPE.search(encoded):
        where, parts = _first_nul(value, name)
        raise invalid(where, "must not contain NUL characters (U+0000)", pointer=pointer_of(parts))


def _first_nul(value: Any, name: str) -> tuple[str, tuple[str | int, ...]]:
    """The field holding the first NUL character in `value` (a key or a string), and its
    keys and indexes from the body's root (`name`'s, dotted as field names are)."""
    root = tuple(name.split("."))
    stack: list[tuple[str, tuple[str | int, ...], Any]] = [(name, root, value)]
    while stack:
        where, parts, item = stack.pop()
        if isinstance(item, str) and "\x00" in item:
            return where, parts
        if isinstance(item, dict):
            entries = []
            for key, child in item.items():
                inner = (f"{where}.{key}", (*parts, key))
                if "\x00" in key:
                    return inner
                entries.append((*inner, child))
            stack.extend(reversed(entries))  # the first one on top
        elif isinstance(item, list):
            stack.extend(
                (f"{where}[{i}]", (*parts, i), child)
                for i, child in reversed(list(enumerate(item)))
            )
    return name, root  # not reached: the encoded text held one


def require_object(value: Any, name: str = "body") -> dict[str, Any]:
    if not isinstance(value, dict):
        raise invalid(name, "must be a JSON object")
    return value


def reject_unknown(body: dict[str, Any], allowed: set[str], prefix: str = "") -> None:
    for key in body:
        if key not in allowed:
            raise invalid(f"{prefix}{key}", "unknown field")


def get_str(
    body: dict[str, Any],
    key: str,
    *,
    prefix: str = "",
    required: bool = False,
    default: str | None = None,
    max_length: int = 1000,
    allow_empty: bool = False,
) -> str | None:
    value = body.get(key)
    name = prefix + key
    if value is None:
        if required:
            raise invalid(name, "is required")
        return default
    if not isinstance(value, str):
        raise invalid(name, "must be a string")
    if "\x00" in value:
        raise invalid(name, "must not contain NUL characters (U+0000)")
    if not allow_empty and blank(value):
        raise invalid(name, "must not be empty")
    if len(value) > max_length:
        raise invalid(name, f"must be at most {max_length} characters")
    return value


def as_integer(value: Any) -> int | None:
    """`value` as an integer where JSON Schema counts it one (5, and 5.0 too), else None
    (booleans, fractions, strings)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def get_int(
    body: dict[str, Any],
    key: str,
    *,
    prefix: str = "",
    default: int | None = None,
    minimum: int | None = None,
    maximum: int | None = None,
) -> int | None:
    value = body.get(key)
    name = prefix + key
    if value is None:
        return default
    value = as_integer(value)
    if value is None:
        raise invalid(name, "must be an integer")
    if minimum is not None and value < minimum:
        raise invalid(name, f"must be at least {minimum}")
    if maximum is not None and value > maximum:
        raise invalid(name, f"must be at most {maximum}")
    return value


def get_number(
    body: dict[str, Any],
    key: str,
    *,
    prefix: str = "",
    default: float | None = None,
    minimum: float | None = None,
    maximum: float | None = None,
) -> float | None:
    value = body.get(key)
    name = prefix + key
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise invalid(name, "must be a number")
    if minimum is not None and value < minimum:
        raise invalid(name, f"must be at least {minimum}")
    if maximum is not None and value > maximum:
        raise invalid(name, f"must be at most {maximum}")
    return float(value)


def get_bool(
    body: dict[str, Any], key: str, *, prefix: str = "", default: bool | None = None
) -> bool | None:
    value = body.get(key)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise invalid(prefix + key, "must be true or false")
    return value


def get_choice(
    body: dict[str, Any],
    key: str,
    choices: tuple[str, ...],
    *,
    prefix: str = "",
    required: bool = False,
    default: str | None = None,
    nullable: bool = True,
) -> str | None:
    """`body[key]`, one of `choices`. A null given where it cannot stand for the default
    (`required`, or not `nullable`: a PATCH, where it would keep the stored value silently)
    is refused with the values it takes: "is required" would deny that the field was sent."""
    if body.get(key, "") is None and (required or not nullable):
        raise invalid(prefix + key, _one_of(choices))
    value = get_str(body, key, prefix=prefix, required=required, default=default)
    if value is not None and value not in choices:
        raise invalid(prefix + key, _one_of(choices))
    return value


def _one_of(choices: tuple[str, ...]) -> str:
    return "must be one of: " + ", ".join(choices)
