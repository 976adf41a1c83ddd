"""txmsg says it is typed (PEP 561): without the marker a user's mypy sees every fake as Any."""

from __future__ import annotations

from importlib.resources import files


def test_the_package_carries_the_py_typed_marker() -> None:
    # The wheel takes every file of src/txmsg (pyproject: packages = ["src/txmsg"]).
    assert files("txmsg").joinpath("py.typed").is_file()
