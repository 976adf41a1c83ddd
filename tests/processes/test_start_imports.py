"""What a start loads: a process's start is paid by every deployment, restart and test run.

Alembic (with Mako) and Twilio's library (with aiohttp and requests) took about 0.2 s of a
start that needs neither: a schema already at head needs no migration, and only an SMS send
needs Twilio's client.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from process_support import SRC

PROGRAM = """
import asyncio, json, sys
from pathlib import Path
from txmsg.app import create_app
from txmsg.config import Settings

async def start() -> None:
    app = create_app(Settings(data_dir=Path(sys.argv[1])))
    async with app.router.lifespan_context(app):
        pass

asyncio.run(start())
print(json.dumps([name for name in ("alembic", "twilio.rest") if name in sys.modules]))
"""


def _loaded_by_a_start(data_dir: Path) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-c", PROGRAM, str(data_dir)],
        env={**os.environ, "PYTHONPATH": SRC},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return list(json.loads(done.stdout.strip().splitlines()[-1]))


def test_a_start_on_a_current_schema_loads_neither_alembic_nor_twilio(tmp_path: Path) -> None:
    assert _loaded_by_a_start(tmp_path) == ["alembic"]  # a new database: migrated
    assert _loaded_by_a_start(tmp_path) == []  # at head: nothing to migrate


ADMINISTRATION = """
import json, sys
from txmsg.cli import main

codes = [main(["migrate"]), main(["keys", "list"]), main(["reseal"])]
print(json.dumps([codes, sorted(m for m in sys.modules if m.startswith("txmsg.engine."))]))
"""


def test_the_administration_commands_load_no_engine(tmp_path: Path) -> None:
    """`migrate`, `keys` and `reseal` open the database with its keyring and nothing more: the
    engine's writer and dispatcher (with phonenumbers, pyarrow, jsonschema and httpx under
    them) were half a second of each such command's start."""
    done = subprocess.run(
        [sys.executable, "-c", ADMINISTRATION],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": SRC, "TXMSG_ADMIN_KEY": "admin-key" + "x" * 20},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    codes, engine = json.loads(done.stdout.strip().splitlines()[-1])
    assert codes == [0, 0, 0], done.stdout + done.stderr
    assert engine == ["txmsg.engine.database"]
