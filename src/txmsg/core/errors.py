"""Domain errors. The API layer turns them into problem+json answers."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

_INDEX = re.compile(r"\[(\d+)\]")


@dataclass(slots=True)
class FieldError:
    """A wrong field: `field` as users write it (`ctx.firstName`, `fields[0].name`)."""

    field: str
    detail: str
    in_header: bool = False
    # Its place in the body, when the field's name cannot say it (a key holding "." or
    # "[1]"); else read from the name.
    pointer: str | None = None

    def as_dict(self) -> dict[str, str]:
        out = {"field": self.field, "detail": self.detail}
        if not self.in_header:
            out["pointer"] = self.where()
        return out

    def where(self) -> str:
        """Its JSON pointer into the request body."""
        return self.pointer if self.pointer is not None else json_pointer(self.field)


def json_pointer(field_path: str) -> str:
    """RFC 6901 pointer into the request body: `fields[0].name` -> `/fields/0/name`."""
    if field_path == "body":
        return ""
    return pointer_of(_INDEX.sub(r".\1", field_path).split("."))


def pointer_of(parts: Iterable[str | int]) -> str:
    """RFC 6901 pointer of the keys and indexes `parts`, from the body's root."""
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)


@dataclass(slots=True)
class DomainError(Exception):
    """An error a client can act on; `status` is the HTTP status it maps to."""

    detail: str
    status: int = 400
    title: str = "Bad Request"
    errors: list[FieldError] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)  # e.g. Retry-After on a 429
    # Further problem members (RFC 9457 extensions), e.g. what still uses a resource.
    members: dict[str, object] = field(default_factory=dict)

    def __str__(self) -> str:
        return self.detail


def invalid(
    field_name: str, detail: str, *, in_header: bool = False, pointer: str | None = None
) -> DomainError:
    """A 400 naming one wrong field (of the body, or a header or query parameter); `pointer`
    when its name cannot say where it is."""
    return DomainError(
        detail=f"{field_name}: {detail}",
        errors=[FieldError(field_name, detail, in_header, pointer)],
    )


def invalid_many(errors: list[FieldError]) -> DomainError:
    first = errors[0]
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return DomainError(detail=f"{first.field}: {first.detail}{more}", errors=errors)


def not_found(detail: str) -> DomainError:
    return DomainError(detail=detail, status=404, title="Not Found")


def conflict(detail: str) -> DomainError:
    return DomainError(detail=detail, status=409, title="Conflict")


def precondition_failed(detail: str) -> DomainError:
    """A 412: the request's If-Match no longer admits the stored resource."""
    return DomainError(detail=detail, status=412, title="Precondition Failed")


def unprocessable(detail: str, errors: list[FieldError] | None = None) -> DomainError:
    return DomainError(
        detail=detail, status=422, title="Unprocessable Content", errors=errors or []
    )


def refused(field_name: str, detail: str, *, in_header: bool = False) -> DomainError:
    """A 422 naming one field that is well-formed by the spec but refused by what exists
    (a referenced configuration, the event's declared fields, the stored value)."""
    return unprocessable(f"{field_name}: {detail}", [FieldError(field_name, detail, in_header)])


def as_refused(error: DomainError) -> DomainError:
    """`error` (a 400 naming fields) as the 422 of a request the current state refuses."""
    return unprocessable(error.detail, error.errors)


def conflicting(field_name: str, detail: str) -> DomainError:
    """A 409 naming the field whose value conflicts with the stored resource."""
    return DomainError(
        detail=f"{field_name}: {detail}",
        status=409,
        title="Conflict",
        errors=[FieldError(field_name, detail)],
    )
