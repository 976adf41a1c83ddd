"""Integers past 64 bits in a request's JSON: refused, naming their field, rather than kept as
floats (the JSON parser reads them as floats, which would change their value silently)."""

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


def check_integers(raw: bytes) -> None:
    """A 400 naming the first integer of the JSON text `raw` outside 64 bits, if any."""
    if _LONG_DIGITS.search(raw) is None:
        return
    try:
        exact = json.loads(raw)
    except ValueError:  # past the digits Python converts (4,300)
        raise invalid("body", "holds an integer too long to read") from None
    where = _oversized(exact, "")
    if where is not None:
        raise invalid(where or "body", RANGE_TEXT)


def _oversized(value: Any, path: str) -> str | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return path if not _LOW <= value <= _HIGH else None
    if isinstance(value, dict):
        items: Any = ((f"{path}.{k}" if path else str(k), v) for k, v in value.items())
    elif isinstance(value, list):
        items = ((f"{path}[{i}]", v) for i, v in enumerate(value))
    else:
        return None
    for where, item in items:
        found = _oversized(item, where)
        if found is not None:
            return found
    return None
