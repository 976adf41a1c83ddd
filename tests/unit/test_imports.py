"""The import graph of src/txmsg: no cycle anywhere, and every arrow points down the layers.

Every import statement counts: at module level, inside a function, and under
`if TYPE_CHECKING:` (a cycle hidden there is still two modules that must change together).
The rules are DESIGN.md's "Layers", written as data in MAY_IMPORT; docs/architecture.md
describes the same rules.
"""

from __future__ import annotations

import ast
from collections import deque
from collections.abc import Collection, Mapping
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"
ROOT = "txmsg"

Graph = Mapping[str, Collection[str]]

_BELOW_API = {
    "txmsg.core",
    "txmsg.durable",
    "txmsg.store",
    "txmsg.channels",
    "txmsg.destinations",
    "txmsg.config",
    "txmsg.metrics",
    "txmsg.sandbox",
}

# What the modules of each layer may import besides their own layer. A layer is a package right
# under txmsg (txmsg.core) or a module there (txmsg.app); a new one fails the test until it gets
# a rule here.
MAY_IMPORT: dict[str, frozenset[str]] = {
    # Pure: no I/O, nothing of the project above it.
    "txmsg.core": frozenset(),
    # Files made durable (fsync, rename, fsync of the folder): the standard library only.
    "txmsg.durable": frozenset(),
    # store, channels and destinations know core's types and nothing above; store and
    # destinations publish their files durably.
    "txmsg.store": frozenset({"txmsg.core", "txmsg.durable"}),
    "txmsg.channels": frozenset({"txmsg.core"}),
    "txmsg.destinations": frozenset({"txmsg.core", "txmsg.durable"}),
    # Template rendering in worker processes, bounded: core's templates run there.
    "txmsg.sandbox": frozenset({"txmsg.core"}),
    # The settings read from the environment, a value type of the deployment: read by the app
    # factory, the CLI and the layers that wire (api, engine), never by those below, which are
    # handed the values they need.
    "txmsg.config": frozenset({"txmsg.core"}),
    # The process's Prometheus metrics: counted by engine, served by api.
    "txmsg.metrics": frozenset({"txmsg.core"}),
    # The shipped fakes (an SMTP server, Twilio's API) and their pytest plugin stand for the
    # world outside: core's value types only. A fake sharing the channels' client code would
    # agree with that code's mistakes instead of catching them.
    "txmsg.testing": frozenset({"txmsg.core"}),
    # api and engine wire the layers below; they never import each other.
    "txmsg.api": frozenset(_BELOW_API),
    "txmsg.engine": frozenset(_BELOW_API),
    # Only the app factory and the CLI import api and engine.
    "txmsg.app": frozenset(_BELOW_API | {"txmsg.api", "txmsg.engine"}),
    # The CLI: what its commands run, and the package's version (`txmsg --version`).
    "txmsg.cli": frozenset(
        _BELOW_API
        | {"txmsg.api", "txmsg.engine", "txmsg.app", "txmsg.commands", "txmsg.testing", "txmsg"}
    ),
    # The CLI's administration commands (keys, check) and its logging: the layers below api,
    # and the engine's database opener (the keyring that seals stored secrets goes with it).
    "txmsg.commands": frozenset(_BELOW_API | {"txmsg.engine"}),
    # The package itself: its version only.
    "txmsg": frozenset(),
}


# --- the graph ------------------------------------------------------------------------------


def module_paths(src: Path, root: str) -> dict[str, Path]:
    """Every module under src/root by its dotted name (a package by its __init__.py)."""
    modules: dict[str, Path] = {}
    for path in sorted((src / root).rglob("*.py")):
        parts = path.relative_to(src).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


def _absolute(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    """The module a `from ... import` names, with its dots resolved against `module`."""
    if node.level == 0:
        return node.module or ""
    package = module if is_package else module.rpartition(".")[0]
    for _ in range(node.level - 1):
        package = package.rpartition(".")[0]
    return f"{package}.{node.module}" if node.module else package


def imported_modules(
    source: str, module: str, is_package: bool, known: Collection[str]
) -> set[str]:
    """The modules of `known` that the code of `module` imports, wherever the statement is.

    `from pkg import name` imports the module pkg.name when there is one (else pkg only);
    `import a.b` counts as an import of a.b (its parent packages hold no code worth a rule).
    """
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(node, module, is_package)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    found.discard(module)
    return {name for name in found if name in known}


def import_graph(src: Path, root: str) -> dict[str, set[str]]:
    """Module -> the project's modules it imports."""
    paths = module_paths(src, root)
    return {
        module: imported_modules(
            path.read_text(encoding="utf-8"), module, path.name == "__init__.py", paths
        )
        for module, path in paths.items()
    }


def cycles(graph: Graph) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan): each holds at
    least one import cycle, and every cycle lies inside one of them."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component: list[str] = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def one_cycle(graph: Graph, component: list[str]) -> list[str]:
    """A shortest closed path through the component's first module, for the failure message."""
    start = component[0]
    members = set(component)
    came_from: dict[str, str] = {}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for target in sorted(graph.get(node, ())):
            if target == start:
                path = [node]
                while path[-1] != start:
                    path.append(came_from[path[-1]])
                return [*reversed(path), start]
            if target in members and target not in came_from:
                came_from[target] = node
                queue.append(target)
    raise AssertionError(f"{component} is not a cycle of the graph")


def layer_of(module: str, root: str = ROOT) -> str:
    """txmsg.store.db -> txmsg.store; txmsg.app -> txmsg.app; txmsg -> txmsg."""
    return ".".join(module.split(".")[:2]) if module.startswith(f"{root}.") else module


def layer_violations(graph: Graph, rules: Mapping[str, Collection[str]]) -> list[str]:
    """Every import that leaves its layer for one its rule does not allow, and every layer
    without a rule."""
    found: list[str] = []
    for module in sorted(graph):
        layer = layer_of(module)
        if layer not in rules:
            found.append(f"{module}: its layer {layer} has no rule in MAY_IMPORT")
            continue
        for target in sorted(graph[module]):
            target_layer = layer_of(target)
            if target_layer != layer and target_layer not in rules[layer]:
                found.append(f"{module} imports {target} ({layer} may not import {target_layer})")
    return found


# --- the project's graph ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    found = import_graph(SRC, ROOT)
    # The walk found the project (not an empty folder) and its known edges.
    assert "txmsg.app" in found
    assert "txmsg.engine.runtime" in found["txmsg.app"]  # the engine's wiring, used by the app
    return found


def test_no_import_cycle(graph: dict[str, set[str]]) -> None:
    found = cycles(graph)
    assert not found, "import cycles:\n" + "\n".join(
        f"  {', '.join(c)}  (e.g. {' -> '.join(one_cycle(graph, c))})" for c in found
    )


def test_imports_point_down_the_layers(graph: dict[str, set[str]]) -> None:
    found = layer_violations(graph, MAY_IMPORT)
    assert not found, "layer rule broken:\n" + "\n".join(f"  {v}" for v in found)


def test_nothing_imports_the_app_factory_but_the_cli(graph: dict[str, set[str]]) -> None:
    importers = sorted(m for m, targets in graph.items() if "txmsg.app" in targets)
    assert importers == ["txmsg.cli"]


# --- the checks themselves, on small synthetic graphs ----------------------------------------


def _graph_of(tmp_path: Path, files: dict[str, str]) -> dict[str, set[str]]:
    for name, source in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source, encoding="utf-8")
    return import_graph(tmp_path, "pkg")


def test_a_cycle_of_two_is_found(tmp_path: Path) -> None:
    graph = _graph_of(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/a.py": "from pkg.b import thing\n",
            "pkg/b.py": "import pkg.a\n",
            "pkg/c.py": "from pkg import a\n",
        },
    )
    assert graph["pkg.c"] == {"pkg", "pkg.a"}
    assert cycles(graph) == [["pkg.a", "pkg.b"]]
    assert one_cycle(graph, ["pkg.a", "pkg.b"]) == ["pkg.a", "pkg.b", "pkg.a"]


def test_a_cycle_hidden_under_type_checking_or_in_a_function_is_found(tmp_path: Path) -> None:
    graph = _graph_of(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/sub/__init__.py": "",
            "pkg/sub/writer.py": (
                "from typing import TYPE_CHECKING\n"
                "if TYPE_CHECKING:\n"
                "    from .dispatcher import Dispatcher\n"
            ),
            "pkg/sub/dispatcher.py": "def run():\n    from ..top import go\n",
            "pkg/top.py": "from pkg.sub import writer\n",
        },
    )
    assert graph["pkg.sub.writer"] == {"pkg.sub.dispatcher"}
    assert graph["pkg.sub.dispatcher"] == {"pkg.top"}
    [component] = cycles(graph)
    assert component == ["pkg.sub.dispatcher", "pkg.sub.writer", "pkg.top"]
    assert one_cycle(graph, component) == [
        "pkg.sub.dispatcher",
        "pkg.top",
        "pkg.sub.writer",
        "pkg.sub.dispatcher",
    ]


def test_an_acyclic_graph_has_no_cycle() -> None:
    assert cycles({"a": {"b", "c"}, "b": {"c"}, "c": set()}) == []


def test_an_upward_import_breaks_the_layer_rules() -> None:
    rules = {"txmsg.core": set(), "txmsg.store": {"txmsg.core"}}
    graph = {
        "txmsg.core.rules": {"txmsg.core.errors"},
        "txmsg.core.errors": set(),
        "txmsg.store.db": {"txmsg.core.errors", "txmsg.store.tables"},
        "txmsg.store.tables": set(),
    }
    assert layer_violations(graph, rules) == []
    graph["txmsg.core.rules"] = {"txmsg.store.db"}
    assert layer_violations(graph, rules) == [
        "txmsg.core.rules imports txmsg.store.db (txmsg.core may not import txmsg.store)"
    ]


def test_a_sideways_import_and_a_layer_without_rule_are_reported() -> None:
    graph = {"txmsg.api.trigger": {"txmsg.engine.writer"}, "txmsg.engine.writer": set()}
    assert layer_violations(graph, MAY_IMPORT) == [
        "txmsg.api.trigger imports txmsg.engine.writer (txmsg.api may not import txmsg.engine)"
    ]
    assert layer_violations({"txmsg.extra": set()}, MAY_IMPORT) == [
        "txmsg.extra: its layer txmsg.extra has no rule in MAY_IMPORT"
    ]
