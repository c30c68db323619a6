"""No import cycles between the modules of the package, its launcher presets and the benchmarks.

Every import counts: at the top of a module, inside a function (a deferred import hides a cycle
without removing it) and under `if TYPE_CHECKING:` (a cycle through type hints still couples the
two modules: neither can be read, changed or moved without the other). An import of `a.b.c` is
an edge to `a.b.c` only, not to the packages `a` and `a.b` that Python also runs first: a module
may use the package it lives in.

The direction this keeps: entry points (`__main__`, prepare, predict, weights, report, benchmarks)
-> job -> lifecycle, training -> loop, checkpoint -> tasks -> data, models, losses, metrics; config
-> tasks -> components; speed -> multirun_launchers.devices -> peak_memory -> config. Below them all,
leaves that import nothing of the package: config_rules (ConfigError and the value rules), stop
(the signal state), placement (where a job runs, a value the job hands to its task). tracking takes
from the job what it needs of the task; nothing imports back up."""

from __future__ import annotations

import ast
from pathlib import Path

from conftest import REPO

ROOTS = ("dedl_experiments", "multirun_launchers", "benchmarks")
# Cycles listed per tangle, enough to see what to cut.
MAX_CYCLES_SHOWN = 30


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package_of(name: str, path: Path) -> str:
    return name if path.name == "__init__.py" else name.rpartition(".")[0]


def imported_modules(tree: ast.AST, name: str, path: Path, known: set[str]) -> set[str]:
    """The modules of `known` that a module imports, wherever in it the import stands."""
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = package_of(name, path).split(".")
                anchor = ".".join(package[:len(package) - (node.level - 1)])
                base = f"{anchor}.{base}" if base else anchor
            for alias in node.names:
                # `from package import module` names a module; `from module import name` does not.
                submodule = f"{base}.{alias.name}"
                found.add(submodule if submodule in known else base)
    return {module for module in found if module in known and module != name}


def import_graph() -> dict[str, set[str]]:
    paths = {module_name(path): path for root in ROOTS for path in sorted((REPO / root).rglob("*.py"))
             if "__pycache__" not in path.parts}
    known = set(paths)
    return {name: imported_modules(ast.parse(path.read_text(), str(path)), name, path, known)
            for name, path in paths.items()}


def tangles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
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


def simple_cycles(graph: dict[str, set[str]], members: list[str], limit: int) -> list[str]:
    """Elementary cycles inside one tangle, each starting at its smallest module."""
    inside = set(members)
    cycles: list[str] = []

    def walk(start: str, node: str, path: list[str]) -> None:
        for target in sorted(graph[node] & inside):
            if len(cycles) >= limit:
                return
            if target == start:
                cycles.append(" -> ".join([*path, start]))
            elif target > start and target not in path:
                walk(start, target, [*path, target])

    for start in members:
        walk(start, start, [start])
    return cycles


def test_the_graph_sees_deferred_relative_and_type_checking_imports(tmp_path) -> None:
    source = ("from typing import TYPE_CHECKING\nfrom . import b\nif TYPE_CHECKING:\n    from .c import X\n"
              "def f():\n    import pkg.d\n    from pkg.sub import e\n")
    known = {"pkg", "pkg.a", "pkg.b", "pkg.c", "pkg.d", "pkg.sub", "pkg.sub.e"}
    found = imported_modules(ast.parse(source), "pkg.a", Path("pkg/a.py"), known)
    assert found == {"pkg.b", "pkg.c", "pkg.d", "pkg.sub.e"}
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set(), "e": {"e"}}
    assert tangles(graph) == [["a", "b", "c"]]
    assert simple_cycles(graph, ["a", "b", "c"], 10) == ["a -> b -> c -> a"]


def test_no_import_cycles() -> None:
    graph = import_graph()
    cycles = [cycle for members in tangles(graph) for cycle in simple_cycles(graph, members, MAX_CYCLES_SHOWN)]
    assert cycles == [], "import cycles:\n" + "\n".join(cycles)


def test_the_leaves_import_nothing_of_the_package() -> None:
    graph = import_graph()
    leaves = ("dedl_experiments.config.config_rules", "dedl_experiments.run.stop", "dedl_experiments.placement")
    assert {leaf: graph[leaf] for leaf in leaves} == {leaf: set() for leaf in leaves}


def test_values_are_passed_down_not_imported() -> None:
    """The stop state without the loop; tracking without the tasks (the job hands it the task's
    values); the tasks without the launchers' module state (the job hands them a placement)."""
    graph = import_graph()
    assert {name for name in ("checkpoint", "lifecycle", "tracking", "predict", "__main__")
            if "dedl_experiments.training.loop" in graph[f"dedl_experiments.{name}"]} == set()
    assert {m for m in graph["dedl_experiments.tracking"] if m.startswith("dedl_experiments.tasks")} == set()
    assert {m for task in ("base", "segmentation", "classification")
            for m in graph[f"dedl_experiments.tasks.{task}"] if m.startswith("multirun_launchers")} == set()
