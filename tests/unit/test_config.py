"""Settings from the environment: a TXMSG_* variable txmsg does not read is named, with the
closest setting (a typo otherwise leaves the default in force without a word)."""

from __future__ import annotations

from pathlib import Path


def test_every_variable_txmsg_reads_is_known() -> None:
    """A variable the code reads is never warned of as unknown (the list is kept beside it)."""
    import re

    from txmsg.config import INTERNAL_VARIABLES, KNOWN_VARIABLES

    source = Path(__file__).resolve().parents[2] / "src" / "txmsg"
    read = {
        name
        for path in source.rglob("*.py")
        for name in re.findall(r"\bTXMSG_[A-Z0-9_]*[A-Z0-9]\b", path.read_text())
    }
    assert read - KNOWN_VARIABLES - INTERNAL_VARIABLES == set()
    settings = Path(source / "config.py").read_text().split("def from_env", 1)[1]
    assert set(re.findall(r'"(TXMSG_[A-Z0-9_]+)"', settings)) == KNOWN_VARIABLES


def test_unknown_variables_are_named_with_the_closest_setting() -> None:
    from txmsg.config import unknown_variables

    env = {
        "TXMSG_DATABSE_URL": "postgresql://db/txmsg",
        "TXMSG_SECRETKEY": "x",
        "TXMSG_DATABASE_URL": "sqlite:///x.db",
        "TXMSG_TEST_PORTS": "54000-54999",
        "TXMSG_HANGUP_RESTARTING": "1",
        "TXMSG_WHATEVER": "1",
        "PATH": "/bin",
    }
    ignored = "is not a txmsg setting"
    assert unknown_variables(env) == [
        f"TXMSG_DATABSE_URL {ignored} (did you mean TXMSG_DATABASE_URL?): it is ignored",
        f"TXMSG_SECRETKEY {ignored} (did you mean TXMSG_SECRET_KEY?): it is ignored",
        f"TXMSG_WHATEVER {ignored}: it is ignored",
    ]
