"""The installation's database, opened with the keyring that seals its stored secrets.

Apart from `runtime.py` (the engine's wiring), so that the administration commands (`migrate`,
`keys`, `check`, `reseal`) open the database without loading the engine: its writer,
dispatcher and their libraries are half a second of every such command's start.
"""

from __future__ import annotations

from txmsg.config import Settings
from txmsg.store.db import Database
from txmsg.store.sealing import Keyring, keyring_for, stored_tokens


def open_database(settings: Settings) -> Database:
    """The installation's database, with the keyring of its settings if there is one yet;
    `unlock_secrets` then checks it against the database's sealed values (or makes it)."""
    return Database(
        settings.resolved_database_url,
        sqlite_synchronous=settings.sqlite_synchronous,
        keyring=Keyring.find(settings.secret_key, settings.data_dir),
        timeout=settings.database_timeout_seconds,
    )


async def unlock_secrets(db: Database, settings: Settings) -> None:
    """Give `db` the keyring that opens its sealed values, before anything reads or seals one.

    A new `secret.key` is made only for a database holding nothing sealed (a fresh install);
    a database sealed with a key that is missing or not the one given is refused
    (`MissingSecretKey`, `WrongSecretKey`: one line, the command exits 3).
    """
    from txmsg.store.tables import metadata

    tokens = await db.read(stored_tokens, metadata)
    db.use_keyring(keyring_for(tokens, settings.secret_key, settings.data_dir))
