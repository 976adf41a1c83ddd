"""Reconciliation: which trigger field matches which profile field, for profile-based events."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from txmsg.core.addresses import normalize_email
from txmsg.core.errors import DomainError, invalid
from txmsg.core.kinds import TargetType
from txmsg.core.phones import normalize_phone
from txmsg.core.validation import reject_unknown

TO_FIELDS = ("email", "mobilePhone", "profile_id")
_CTX_FIELD = re.compile(r"^ctx\.[A-Za-z_][A-Za-z0-9_]{0,63}\Z")
DEFAULT = {"from": "email", "to": "email"}


@dataclass(frozen=True, slots=True)
class Reconciliation:
    source: str  # "email", "mobilePhone" or "ctx.<field>"
    to: str  # "email", "mobilePhone" or "profile_id"

    @classmethod
    def of(cls, stored: dict[str, str] | None) -> Reconciliation:
        stored = stored or DEFAULT
        return cls(stored["from"], stored["to"])

    def key(
        self, email: str | None, ctx: dict[str, Any], mobile_phone: str | None = None
    ) -> str | None:
        """The value to look profiles up by, normalized as profiles store it; None if none."""
        if self.source == "email":
            raw: Any = email
        elif self.source == "mobilePhone":
            raw = mobile_phone
        else:
            raw = ctx.get(self.source[4:])
        if isinstance(raw, int) and not isinstance(raw, bool):
            raw = str(raw)
        if not isinstance(raw, str) or not raw:
            return None
        try:
            if self.to == "email":
                return normalize_email(raw, self.source)
            if self.to == "mobilePhone":
                return normalize_phone(raw, self.source)
        except DomainError:
            return None
        return raw

    def describe(self) -> str:
        return f"{self.source} -> profile {self.to}"


def parse_reconciliation(value: Any, target: str) -> dict[str, str] | None:
    """The stored form of an event configuration's `reconciliation` (None for event-based)."""
    if target != TargetType.PROFILE:
        if value is not None:
            raise invalid("reconciliation", "only profile-based events (target: profile) have one")
        return None
    if value is None:
        return dict(DEFAULT)
    if not isinstance(value, dict):
        raise invalid("reconciliation", "must be an object {from, to}")
    reject_unknown(value, {"from", "to"}, "reconciliation.")
    source = value.get("from")
    if not isinstance(source, str) or not (
        source in ("email", "mobilePhone") or _CTX_FIELD.match(source)
    ):
        raise invalid("reconciliation.from", "must be email, mobilePhone or ctx.<field>")
    to = value.get("to")
    if to not in TO_FIELDS:
        raise invalid("reconciliation.to", "must be one of: " + ", ".join(TO_FIELDS))
    return {"from": source, "to": to}
