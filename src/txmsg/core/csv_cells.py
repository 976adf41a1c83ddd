"""CSV cells a spreadsheet will not run: text a caller chose (an address, a reason, a ctx
value) that starts like a formula is prefixed with a quote (CSV injection, OWASP)."""

from __future__ import annotations

from typing import Any

_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def defused(value: Any) -> Any:
    """`value`, a text cell that a spreadsheet would read as a formula prefixed with `'`;
    numbers and anything else as they are."""
    if isinstance(value, str) and value.startswith(_FORMULA_STARTS):
        return "'" + value
    return value


def restored(text: str) -> str:
    """A cell as written before `defused` (a CSV exported here and imported back)."""
    if text.startswith("'") and text[1:].startswith(_FORMULA_STARTS):
        return text[1:]
    return text
