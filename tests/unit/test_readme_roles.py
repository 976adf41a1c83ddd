"""The README's "Process roles" and "Scale out" sections: every `txmsg` command they show (shell
lines, the Procfile, the systemd units, inline) is one the command line accepts as written, and
their PostgreSQL URL is one the store takes. The processes themselves run in
tests/processes/test_roles.py and test_scale_out.py with the same arguments."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from txmsg.cli import parser
from txmsg.store.db import normalize_url
from txmsg.store.sealing import Keyring

README = Path(__file__).resolve().parents[2] / "README.md"
FENCE = re.compile(r"^```[a-z]*\n(.*?)^```", re.M | re.S)
COMMAND = re.compile(r"(?:/opt/txmsg/bin/)?\btxmsg ((?:serve|worker|migrate)\b[^`&#\n]*)")


def _section(text: str, title: str) -> str:
    start = text.index(f"\n## {title}\n")
    end = text.index("\n## ", start + 1)
    return text[start:end]


def _commands() -> list[str]:
    text = README.read_text()
    sections = _section(text, "Process roles") + _section(text, "Scale out")
    found = []
    for block in FENCE.findall(sections):
        lines = [line for line in block.splitlines() if not line.startswith("Description=")]
        found += [m.group(1) for line in lines for m in COMMAND.finditer(line)]
    prose = FENCE.sub("", sections)
    for span in re.findall(r"`([^`]+)`", prose):
        if "[" not in span:  # a usage synopsis (`txmsg worker [--health-port N]`)
            found += [m.group(1) for m in COMMAND.finditer(span.replace("\n", " "))]
    return [c.strip() for c in found]


def test_the_sections_show_every_role() -> None:
    shown = {" ".join(shlex.split(c)[:3]) for c in _commands()}
    assert {"serve --role api", "worker --health-port 8027", "worker"} <= shown, shown


def _instances() -> list[str]:
    """The systemd units' instance names the section starts (`txmsg-worker@8101`)."""
    return re.findall(r"`txmsg-\w+@(\w+)`", _section(README.read_text(), "Scale out"))


@pytest.mark.parametrize("command", _commands())
def test_each_command_is_accepted_as_written(command: str) -> None:
    # The Procfile's $PORT and the systemd units' instance names, as they would be filled.
    # A port made of a prefix and the instance number (`810%i`) is none from instance 10 on.
    assert not re.search(r"\d%i", command), command
    instances = _instances() if "%i" in command else ["-"]
    assert instances, "no systemd instance started in the Scale out section"
    for instance in instances:
        args = shlex.split(command.replace("$PORT", "5000").replace("%i", instance))
        parsed = parser().parse_args(args)
        assert parsed.command == args[0]
        if "--role" in args:
            assert parsed.role == args[args.index("--role") + 1]


def test_the_url_shown_is_taken_as_is() -> None:
    section = _section(README.read_text(), "Scale out")
    urls = re.findall(r"TXMSG_DATABASE_URL=(postgresql://\S+?)`", section)
    assert urls, "no TXMSG_DATABASE_URL example in the Scale out section"
    for url in urls:
        assert normalize_url(url).startswith("postgresql+asyncpg://"), url
    # As hosting platforms give it (`postgres://`), too.
    assert normalize_url("postgres://txmsg:pw@db:5432/txmsg") == (
        "postgresql+asyncpg://txmsg:pw@db:5432/txmsg"
    )


def test_the_settings_every_process_shares_are_named() -> None:
    """Processes on several machines need the same secret key (or a worker cannot open the
    secrets an API sealed) and a data folder their user can write."""
    section = _section(README.read_text(), "Scale out")
    names = ("TXMSG_DATABASE_URL", "TXMSG_ADMIN_KEY", "TXMSG_SECRET_KEY", "TXMSG_DATA_DIR")
    for name in (*names, "TXMSG_PUBLIC_URL"):
        assert f"`{name}" in section, name
        assert f"`{name}=" in section.split("/etc/txmsg/env` holds", 1)[1], name


def test_the_secret_key_shown_is_one_the_store_takes(tmp_path: Path) -> None:
    command = re.search(
        r"`(python3 -c '[^`]*Fernet[^`]*)`", _section(README.read_text(), "Scale out")
    )
    assert command is not None, "no way to make a TXMSG_SECRET_KEY shown"
    made = subprocess.run(
        [sys.executable, *shlex.split(command.group(1))[1:]],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    sealed = Keyring.load(made, tmp_path).seal({"password": "smtp-password"})
    assert Keyring.load(made, tmp_path / "elsewhere").open(sealed) == {"password": "smtp-password"}
    assert not (tmp_path / "secret.key").exists()  # the key given, no file of its own made
