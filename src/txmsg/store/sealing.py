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

import base64
import binascii
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


class MissingSecretKey(SealError):
    """The database holds sealed values and no key was given: it was sealed with a key that is
    not here (a database restored without its `secret.key`). No new key is made for it."""


class WrongSecretKey(SealError):
    """The keys given open none of (or not all of) the database's sealed values."""


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
        # Set when a stored value would not open: `/ready` then checks the database's values.
        self.failed = False

    def __repr__(self) -> str:
        return "Keyring(...)"

    @classmethod
    def load(cls, secret_key: str | None, data_dir: Path) -> Keyring:
        """From `TXMSG_SECRET_KEY`'s value, else from (a new) `secret.key` in `data_dir`."""
        if secret_key:
            return cls(_split(secret_key))
        return cls(_split(_key_file(data_dir / KEY_FILE)))

    @classmethod
    def find(cls, secret_key: str | None, data_dir: Path) -> Keyring | None:
        """From `TXMSG_SECRET_KEY`'s value, else from `secret.key` in `data_dir`; None when
        neither exists (nothing is written)."""
        if secret_key:
            return cls(_split(secret_key))
        try:
            return cls(_split((data_dir / KEY_FILE).read_text("ascii")))
        except FileNotFoundError:
            return None

    def opens(self, token: str) -> bool:
        """Whether a key of this keyring opens `token` (a check: nothing is recorded)."""
        try:
            self._fernet.decrypt(token.encode("ascii"))
        except (InvalidToken, UnicodeEncodeError):
            return False
        return True

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
            self.failed = True  # read by /ready: this process cannot open what is stored
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


def _looks_sealed(value: object) -> bool:
    """Whether a stored value is a Fernet token (a plain secret of a schema from before
    sealing is not): version byte 0x80, then timestamp, IV, whole AES blocks and HMAC."""
    if not isinstance(value, str) or not value.startswith("gAAAAA"):
        return False
    try:
        raw = base64.urlsafe_b64decode(value.encode("ascii"))
    except (binascii.Error, UnicodeEncodeError, ValueError):
        return False
    return raw[0] == 0x80 and len(raw) >= 73 and (len(raw) - 57) % 16 == 0


def stored_tokens(conn: Connection, metadata: sa.MetaData) -> list[str]:
    """Every sealed value the database holds (of the tables it has: a database not yet
    migrated has fewer, a new one none), read as stored: nothing is opened."""
    inspector = sa.inspect(conn)
    tokens: list[str] = []
    for column in sealed_columns(metadata):
        if not inspector.has_table(column.table.name):
            continue
        plain = sa.Text() if isinstance(column.type, SealedText) else _plain_json(conn.dialect)
        raw = sa.type_coerce(column, plain)
        tokens.extend(v for v in conn.execute(sa.select(raw)).scalars() if _looks_sealed(v))
    return tokens


def keyring_for(tokens: Sequence[str], secret_key: str | None, data_dir: Path) -> Keyring:
    """The keyring that opens `tokens` (the database's sealed values): from `TXMSG_SECRET_KEY`,
    else the data directory's `secret.key`. A new `secret.key` is made only for a database
    that holds nothing sealed yet (a fresh install); a database sealed with a key that is not
    here (restored without its key) or that the key given does not open is refused, with the
    one line that says so, and nothing is written."""
    keyring = Keyring.find(secret_key, data_dir)
    path = data_dir.resolve() / KEY_FILE
    count = f"{len(tokens)} sealed secret(s) (SMTP passwords, Twilio tokens, server secrets...)"
    if keyring is None:
        if not tokens:
            return Keyring.load(None, data_dir)  # a fresh install: its key is made now
        raise MissingSecretKey(
            f"no secret key: TXMSG_SECRET_KEY is not set and {path} does not exist, but the "
            f"database holds {count} sealed with another key (restored without its key?); "
            f"restore that key: copy the secret.key kept with the database's backup to {path} "
            "(or set TXMSG_SECRET_KEY to it). No new key was made: one would open none of them"
        )
    unopened = sum(not keyring.opens(token) for token in tokens)
    if unopened:
        source = "TXMSG_SECRET_KEY" if secret_key else str(path)
        raise WrongSecretKey(
            f"the secret key of {source} does not open {unopened} of the database's {count}: "
            "the database was sealed with another key; use that key (restore the secret.key "
            "kept with the database's backup, or set TXMSG_SECRET_KEY to it), or during a key "
            'rotation both, "NEW,OLD", until `txmsg reseal` has run'
        )
    return keyring


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
