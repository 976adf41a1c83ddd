"""Domain errors. The API layer turns them into problem+json answers."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class FieldError:
    field: str
    detail: str

    def as_dict(self) -> dict[str, str]:
        pointer = "/" + self.field.replace("~", "~0").replace("/", "~1").replace(".", "/")
        return {"field": self.field, "pointer": pointer, "detail": self.detail}


@dataclass(slots=True)
class DomainError(Exception):
    """An error a client can act on; `status` is the HTTP status it maps to."""

    detail: str
    status: int = 400
    title: str = "Bad Request"
    errors: list[FieldError] = field(default_factory=list)

    def __str__(self) -> str:
        return self.detail


def invalid(field_name: str, detail: str) -> DomainError:
    """A 400 naming one wrong field."""
    return DomainError(
        detail=f"{field_name}: {detail}",
        errors=[FieldError(field_name, detail)],
    )


def invalid_many(errors: list[FieldError]) -> DomainError:
    first = errors[0]
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return DomainError(detail=f"{first.field}: {first.detail}{more}", errors=errors)


def not_found(detail: str) -> DomainError:
    return DomainError(detail=detail, status=404, title="Not Found")


def conflict(detail: str) -> DomainError:
    return DomainError(detail=detail, status=409, title="Conflict")


def unprocessable(detail: str, errors: list[FieldError] | None = None) -> DomainError:
    return DomainError(
        detail=detail, status=422, title="Unprocessable Content", errors=errors or []
    )
