"""Export flows: where and how the message export dataset is delivered (JSON or Parquet files).

A flow's destination is a local folder or an S3-compatible bucket; `secret_access_key` is
write-only (kept with the secrets, shown only as `secret_access_key_set`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from txmsg.core.channel_config import parse_name
from txmsg.core.durations import parse_duration
from txmsg.core.errors import DomainError, as_refused, invalid, refused
from txmsg.core.urls import http_url
from txmsg.core.validation import get_choice, get_str, reject_unknown, require_object

FORMATS = ("json", "parquet")
COMPRESSIONS = {"parquet": ("snappy", "zstd", "gzip", "none"), "json": ("none", "gzip")}
DEFAULT_COMPRESSION = {"parquet": "snappy", "json": "none"}
DESTINATION_TYPES = ("local", "s3")
CREATE_FIELDS = {"name", "format", "destination", "schedule", "compression"}
UPDATE_FIELDS = CREATE_FIELDS
LOCAL_FIELDS = {"type", "path"}
S3_FIELDS = {
    "type",
    "bucket",
    "prefix",
    "endpoint_url",
    "region",
    "access_key_id",
    "secret_access_key",
}
DEFAULT_SCHEDULE = "PT1H"
MIN_SCHEDULE = timedelta(minutes=1)
# Longest schedule read (a schedule past the export retention is refused after).
MAX_SCHEDULE = timedelta(days=3660)
# What the stored secret_access_key was given for: a PATCH changing one must give it again.
_SECRET_BOUND = ("access_key_id", "endpoint_url")
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]\Z")


@dataclass(frozen=True, slots=True)
class FlowSpec:
    name: str
    format: str
    destination: dict[str, Any]  # without secrets
    secrets: dict[str, Any]
    schedule: str
    compression: str

    @property
    def interval(self) -> timedelta:
        return parse_duration(self.schedule, "schedule", MAX_SCHEDULE, weeks=False)


def days_text(span: timedelta) -> str:
    """A span in days as people read it: `7 days`, `1 day`, `0.5 days`."""
    days = span / timedelta(days=1)
    return f"{days:g} day" + ("" if days == 1 else "s")


def _schedule(value: object, retention: timedelta) -> str:
    interval = parse_duration(value, "schedule", MAX_SCHEDULE, weeks=False, example="PT1H")
    if interval < MIN_SCHEDULE:
        raise invalid("schedule", "must be at least one minute (PT1M)")
    if interval > retention:  # the installation's retention, which the spec cannot know: a 422
        raise refused(
            "schedule",
            f"is longer than the retention window of the export dataset "
            f"({days_text(retention)}): records would expire before being exported",
        )
    assert isinstance(value, str)
    return value


def _endpoint(value: str | None) -> str | None:
    if value is None:
        return None
    problem = "must be an http:// or https:// URL with a host and no path, query or user"
    parts = http_url(value, "destination.endpoint_url")
    # The spec's [^/?#@\s]: credentials in the URL would be shown back as given, and the
    # keys have their own write-only fields.
    if parts.path not in ("", "/") or any(c in value for c in "?#@"):
        raise invalid("destination.endpoint_url", problem)
    return value.rstrip("/")


def _local_path(merged: dict[str, Any]) -> str:
    path = get_str(merged, "path", prefix="destination.", required=True, max_length=1000)
    assert path is not None
    if not path.startswith("/"):
        raise invalid("destination.path", "must be an absolute path")
    if ".." in path.split("/"):  # the folder named is the folder written to
        raise invalid("destination.path", "must not have a '..' segment")
    return path


def _destination(
    raw: object, current: dict[str, Any] | None, current_secrets: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    body = require_object(raw, "destination")
    p = "destination."
    kind = get_choice(
        body, "type", DESTINATION_TYPES, prefix=p, required=current is None, nullable=False
    )
    merging = current is not None and kind in (None, current["type"])
    if merging:
        assert current is not None
        # Fields of the other type's destination, or a key without its stored pair, are
        # refused by what is stored, not by the spec: a 422.
        reject_unknown(body, LOCAL_FIELDS | S3_FIELDS, p)  # no destination's field: a 400
        fitting = LOCAL_FIELDS if current["type"] == "local" else S3_FIELDS
        stray = sorted(k for k in body if k not in fitting)
        if stray:
            detail = f"is not a field of this flow's {current['type']} destination"
            raise refused(p + stray[0], detail)
        merged = {**current, **{k: v for k, v in body.items() if k != "secret_access_key"}}
        secrets = dict(current_secrets)
    else:
        merged = {k: v for k, v in body.items() if k != "secret_access_key"}
        secrets = {}
    kind = merged["type"] = kind or merged.get("type")
    if kind == "local":
        reject_unknown(body, LOCAL_FIELDS, p)
        return {"type": "local", "path": _local_path(merged)}, {}
    reject_unknown(body, S3_FIELDS, p)
    bucket = get_str(merged, "bucket", prefix=p, required=True, max_length=63)
    assert bucket is not None
    if not _BUCKET.match(bucket):
        raise invalid("destination.bucket", "must be 3-63 lower-case letters, digits, '.' or '-'")
    prefix = get_str(merged, "prefix", prefix=p, default="", max_length=500, allow_empty=True)
    assert prefix is not None
    if prefix.startswith("/") or ".." in prefix.split("/"):
        raise invalid("destination.prefix", "must be a relative key prefix (no leading '/')")
    if "secret_access_key" in body:
        secret = body["secret_access_key"]
        if secret is not None and not isinstance(secret, str):
            raise invalid("destination.secret_access_key", "must be a string")
        if secret and "\x00" in secret:
            raise invalid("destination.secret_access_key", "must not contain NUL characters")
        secrets.pop("secret_access_key", None)  # explicit null or "" clears it
        if secret:
            secrets["secret_access_key"] = secret
    destination = {
        "type": "s3",
        "bucket": bucket,
        "prefix": prefix.strip("/"),
        "endpoint_url": _endpoint(get_str(merged, "endpoint_url", prefix=p, max_length=500)),
        "region": get_str(merged, "region", prefix=p, default="us-east-1", max_length=64),
        "access_key_id": get_str(merged, "access_key_id", prefix=p, max_length=256),
    }
    if merging and "secret_access_key" not in body:
        _keep_secret(destination, current or {})
    if bool(destination["access_key_id"]) != bool(secrets.get("secret_access_key")):
        paired = {"access_key_id", "secret_access_key"} <= body.keys()
        raise (refused if merging and not paired else invalid)(
            "destination.secret_access_key",
            "access_key_id and secret_access_key are given together (or neither, for the "
            "environment's credentials)",
        )
    return destination, secrets


def _keep_secret(destination: dict[str, Any], current: dict[str, Any]) -> None:
    """Refuse a PATCH keeping the stored secret for another key or endpoint: the secret was
    given for one key at one endpoint; kept, it would pair with another key, or sign requests
    to a host it was not given for."""
    if not destination["access_key_id"]:
        return
    for field in _SECRET_BOUND:
        if destination[field] != current.get(field):
            raise refused("destination.secret_access_key", f"is required when {field} changes")


def _compression(body: dict[str, Any], fmt: str, current: str | None) -> str:
    default = current if current in COMPRESSIONS[fmt] else DEFAULT_COMPRESSION[fmt]
    if current is not None and body.get("compression", "") is None:
        # A PATCH's null is malformed (a 400), not a value the stored format refuses (a 422).
        get_choice(body, "compression", COMPRESSIONS[fmt], nullable=False)
    try:
        value = get_choice(body, "compression", COMPRESSIONS[fmt], default=default)
    except DomainError as exc:
        if current is not None and "format" not in body:  # the stored format refuses it
            raise as_refused(exc) from None
        raise
    assert value is not None
    return value


def parse_create(body: object, retention: timedelta) -> FlowSpec:
    body = require_object(body)
    reject_unknown(body, CREATE_FIELDS)
    name = parse_name(body.get("name"))
    fmt = get_choice(body, "format", FORMATS, required=True)
    assert fmt is not None
    if "destination" not in body:
        raise invalid("destination", "is required")
    destination, secrets = _destination(body["destination"], None, {})
    schedule = _schedule(body.get("schedule", DEFAULT_SCHEDULE), retention)
    return FlowSpec(name, fmt, destination, secrets, schedule, _compression(body, fmt, None))


def parse_update(body: object, current: FlowSpec, retention: timedelta) -> FlowSpec:
    """Apply a PATCH body: given fields replace the stored ones; `name` cannot change."""
    body = require_object(body)
    reject_unknown(body, UPDATE_FIELDS)
    if "name" in body:
        raise invalid("name", "cannot be changed after creation")
    fmt = get_choice(body, "format", FORMATS, default=current.format, nullable=False)
    assert fmt is not None
    destination, secrets = current.destination, current.secrets
    if "destination" in body:
        destination, secrets = _destination(body["destination"], destination, secrets)
    schedule = _schedule(body.get("schedule", current.schedule), retention)
    compression = _compression(body, fmt, current.compression)
    return FlowSpec(current.name, fmt, destination, secrets, schedule, compression)


def public_view(spec: FlowSpec) -> dict[str, Any]:
    destination = dict(spec.destination)
    if destination["type"] == "s3":
        destination["secret_access_key_set"] = "secret_access_key" in spec.secrets
    return {
        "name": spec.name,
        "format": spec.format,
        "destination": destination,
        "schedule": spec.schedule,
        "compression": spec.compression,
    }
