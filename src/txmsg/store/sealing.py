"""Secrets at rest: every stored secret (channel configurations', export flows', webhooks') is
sealed here.

A column of type `SealedJson` holds a JSON object of secrets (SMTP password, Twilio token, DKIM
key, S3 keys, whatever a configuration adds) as one Fernet token (a `SealedText` column one
secret string) (AES-128-CBC + HMAC-SHA256,
the `cryptography` package): a copy of the database alone reveals none of them. The keyring is
the engine's: `Database` installs it on its SQLAlchemy dialect, where the column type finds it
when it binds or reads a value, so no query has to remember to seal or open anything.

The keys come from `TXMSG_SECRET_KEY` (one or more Fernet keys, comma-separated) or, without
it, from the file `secret.key` in the data directory, created on first start (mode 0600; one key
a line). The first key seals; every key opens (MultiFernet): to rotate, put a new key first,
run `txmsg reseal` (every sealed value is sealed again with the new key), then drop the old one.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa
from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.types import TypeDecorator

KEY_FILE = "secret.key"
_ATTRIBUTE = "txmsg_keyring"


class SealError(Exception):
    """A sealed value that no key of the keyring opens, or a keyring that is missing."""


class BadSecretKey(ValueError):
    """A secret key (TXMSG_SECRET_KEY, or the data directory's secret.key) is not a Fernet key."""


class Keyring:
    """Fernet keys: the first seals, all open. Never printed (no key in a repr)."""

    def __init__(self, keys: Sequence[bytes | str]) -> None:
        if not keys:
            raise ValueError("a keyring needs at least one key")
        try:
            self._fernet = MultiFernet([Fernet(key) for key in keys])
        except ValueError:
            raise BadSecretKey(
                "a secret key must be a Fernet key (32 url-safe base64-encoded bytes)"
            ) from None

    def __repr__(self) -> str:
        return "Keyring(...)"

    @classmethod
    def load(cls, secret_key: str | None, data_dir: Path) -> Keyring:
        """From `TXMSG_SECRET_KEY`'s value, else from (a new) `secret.key` in `data_dir`."""
        if secret_key:
            return cls(_split(secret_key))
        return cls(_split(_key_file(data_dir / KEY_FILE)))

    def seal(self, value: dict[str, Any]) -> str:
        return self.seal_text(orjson.dumps(value).decode())

    def open(self, token: str) -> dict[str, Any]:
        opened: dict[str, Any] = orjson.loads(self.open_text(token))
        return opened

    def seal_text(self, value: str) -> str:
        return self._fernet.encrypt(value.encode()).decode("ascii")

    def open_text(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode("ascii")).decode()
        except InvalidToken:
            raise SealError(
                "a stored secret opens with none of the secret keys (TXMSG_SECRET_KEY or "
                "secret.key of the data directory): the key it was sealed with is missing"
            ) from None

    def reseal(self, token: str) -> str:
        """The same value sealed with the first key (key rotation)."""
        try:
            return self._fernet.rotate(token.encode("ascii")).decode("ascii")
        except InvalidToken:
            raise SealError("a stored secret opens with none of the secret keys") from None


def _split(keys: str) -> list[str]:
    return [k.strip() for k in keys.replace(",", "\n").splitlines() if k.strip()]


def _key_file(path: Path) -> str:
    """The key file's text; the first process to need one writes it whole (0600), atomically."""
    with contextlib.suppress(FileNotFoundError):
        return path.read_text("ascii")
    path.parent.mkdir(parents=True, exist_ok=True)
    draft = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, Fernet.generate_key() + b"\n")
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(draft, path)  # fails if another process got there first: use its key
    except FileExistsError:
        pass
    finally:
        draft.unlink()
    return path.read_text("ascii")


def install(dialect: Dialect, keyring: Keyring | None) -> None:
    """Give an engine's dialect its keyring (done by `Database` for its engine)."""
    setattr(dialect, _ATTRIBUTE, keyring)


def keyring_of(dialect: Dialect) -> Keyring:
    keyring: Keyring | None = getattr(dialect, _ATTRIBUTE, None)
    if keyring is None:
        raise SealError("this database connection has no keyring: secrets cannot be sealed")
    return keyring


class SealedJson(TypeDecorator[dict[str, Any]]):
    """A JSON object of secrets, stored as a JSON string: its Fernet token.

    An empty object stays `{}` (nothing to hide); a plain object read back is one written
    before secrets were sealed (migration 0013 seals them all).
    """

    impl = sa.JSON()
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> Any:
        return dialect.type_descriptor(_plain_json(dialect))

    def process_bind_param(self, value: dict[str, Any] | None, dialect: Dialect) -> Any:
        if not value:
            return value
        return keyring_of(dialect).seal(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> dict[str, Any] | None:
        if isinstance(value, str):
            return keyring_of(dialect).open(value)
        return value


class SealedText(TypeDecorator[str]):
    """One secret string (a webhook's signing secret), stored as its Fernet token."""

    impl = sa.Text()
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        return None if value is None else keyring_of(dialect).seal_text(value)

    def process_result_value(self, value: str | None, dialect: Dialect) -> str | None:
        return None if value is None else keyring_of(dialect).open_text(value)


def _plain_json(dialect: Dialect) -> sa.types.TypeEngine[Any]:
    """The column's stored type, without the sealing (JSONB on PostgreSQL)."""
    return postgresql.JSONB() if dialect.name == "postgresql" else sa.JSON()


def sealed_columns(metadata: sa.MetaData) -> list[sa.Column[Any]]:
    """Every column of the schema that holds sealed secrets."""
    return [
        column
        for table in metadata.sorted_tables
        for column in table.columns
        if isinstance(column.type, SealedJson | SealedText)
    ]


def reseal_all(conn: Connection, metadata: sa.MetaData) -> int:
    """Seal every stored secret again with the keyring's first key; the number of values."""
    keyring = keyring_of(conn.dialect)
    count = 0
    for column in sealed_columns(metadata):
        table = column.table
        key = list(table.primary_key.columns)
        plain = sa.Text() if isinstance(column.type, SealedText) else _plain_json(conn.dialect)
        raw = sa.type_coerce(column, plain)
        for row in conn.execute(sa.select(*key, raw.label("sealed"))):
            if not isinstance(row.sealed, str):
                continue
            match = sa.and_(*(c == row._mapping[c.name] for c in key))
            conn.execute(
                sa.update(table)
                .where(match)
                .values({column.name: sa.type_coerce(keyring.reseal(row.sealed), raw.type)})
            )
            count += 1
    return count
