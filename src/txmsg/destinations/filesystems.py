"""A flow's destination as a pyarrow filesystem and a base path inside it."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from pyarrow import fs as pafs


def open_destination(
    destination: dict[str, Any], secrets: dict[str, Any]
) -> tuple[pafs.FileSystem, str]:
    if destination["type"] == "local":
        return pafs.LocalFileSystem(), destination["path"].rstrip("/") or "/"
    options: dict[str, Any] = {"region": destination.get("region") or "us-east-1"}
    endpoint = destination.get("endpoint_url")
    if endpoint:
        parts = urlsplit(endpoint)
        options["endpoint_override"] = parts.netloc
        options["scheme"] = parts.scheme
    if destination.get("access_key_id"):
        options["access_key"] = destination["access_key_id"]
        options["secret_key"] = secrets.get("secret_access_key", "")
    base = destination["bucket"]
    if destination.get("prefix"):
        base = f"{base}/{destination['prefix']}"
    return pafs.S3FileSystem(**options), base
