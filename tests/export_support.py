"""Shared by the message export tests: a real S3-compatible server on loopback, file readers."""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pyarrow import fs as pafs

S3_KEY_ID = "AKIDEXPORTTEST"
S3_SECRET = "export-secret-" + "s" * 20


class S3Server:
    """moto's S3 in server mode, in a thread, on a loopback port."""

    def __init__(self) -> None:
        from moto.server import ThreadedMotoServer

        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.endpoint_url = f"http://{host}:{port}"
        self.fs = pafs.S3FileSystem(
            access_key=S3_KEY_ID,
            secret_key=S3_SECRET,
            region="us-east-1",
            endpoint_override=f"{host}:{port}",
            scheme="http",
            allow_bucket_creation=True,
        )

    def make_bucket(self) -> str:
        """A new bucket (the server is shared by the tests of a session)."""
        name = "exports-" + secrets.token_hex(6)
        self.fs.create_dir(name)
        return name

    def stop(self) -> None:
        self._server.stop()


@pytest.fixture(scope="session")
def s3() -> Iterator[S3Server]:
    server = S3Server()
    try:
        yield server
    finally:
        server.stop()


def list_files(fs: pafs.FileSystem, base: str) -> list[str]:
    """Every file under `base`, relative to it, hidden ones included."""
    infos = fs.get_file_info(pafs.FileSelector(base, recursive=True, allow_not_found=True))
    return sorted(i.path[len(base) + 1 :] for i in infos if i.type == pafs.FileType.File)


def read_parquet_files(fs: pafs.FileSystem, base: str, files: list[str]) -> pa.Table:
    return pa.concat_tables([pq.read_table(f"{base}/{f}", filesystem=fs) for f in files])


def read_ndjson_files(fs: pafs.FileSystem, base: str, files: list[str]) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = []
    for f in files:
        stream: Any = fs.open_input_stream(f"{base}/{f}", compression=None)
        if f.endswith(".gz"):
            stream = pa.CompressedInputStream(stream, "gzip")
        with stream:
            records += [json.loads(line) for line in stream.read().decode().splitlines()]
    return records


def untagged(files: list[str]) -> list[str]:
    """File names without their run's random tag: `part-<run>-<tag>-<n>` as `part-<run>-<n>`,
    each name checked to hold one."""
    names = [re.sub(r"/part-(\d+)-[0-9a-f]{8}-(\d+)\.", r"/part-\1-\2.", f) for f in files]
    assert all(n != f for n, f in zip(names, files, strict=True)), files
    return names
