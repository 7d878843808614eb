"""The runtime package has no import cycle: `session.py` builds everything, and every other module
depends only on the narrow contexts and shared state it needs (runtime.context, runtime.state).

Every import statement counts, wherever it is: at module level, inside a function, or under
`if TYPE_CHECKING:` (a cycle of type-only imports is still a circle to reason about). Importing a
module also imports the packages above it.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "trainguard.runtime"


def module_paths() -> dict[str, Path]:
    """The runtime's modules, by dotted name (a package by its own name)."""
    found = {}
    for path in (ROOT / "trainguard" / "runtime").rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def with_packages(name: str, modules: dict[str, Path]) -> set[str]:
    """`name` and the runtime packages above it (importing a module runs its packages first)."""
    parts = name.split(".")
    return {".".join(parts[:end]) for end in range(2, len(parts) + 1)} & modules.keys()


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The runtime modules that `name` imports, with their packages."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            # `from package import name`: a submodule when there is one, else a name in `package`.
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target:
                found |= with_packages(target, modules)
    return found - {name}


def import_graph() -> dict[str, set[str]]:
    modules = module_paths()
    graph = {name: imports_of(name, path, modules) for name, path in modules.items()}
    for name in modules:  # a module needs its packages
        graph[name] |= with_packages(name, modules) - {name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The groups of modules that import one another, directly or through others."""
    def reachable(start: str) -> set[str]:
        seen, todo = set(), [start]
        while todo:
            for target in graph.get(todo.pop(), ()):
                if target not in seen:
                    seen.add(target)
                    todo.append(target)
        return seen

    reach = {name: reachable(name) for name in graph}
    groups = {frozenset({name} | {other for other in reach[name] if name in reach[other]}) for name in graph if name in reach[name]}
    return sorted(sorted(group) for group in groups)


def test_the_runtime_package_has_no_import_cycle() -> None:
    graph = import_graph()
    # The walk sees the imports it must: the composition root builds detectors and probes.
    assert {f"{PACKAGE}.detectors", f"{PACKAGE}.probes.modules", f"{PACKAGE}.context"} <= graph[f"{PACKAGE}.session"]
    assert f"{PACKAGE}.detectors" in graph[f"{PACKAGE}.detectors.stale_gradients"]
    assert cycles(graph) == []
    # Components get a narrow context: only the in-code face (watch, install) knows the session.
    assert {name for name, imported in graph.items() if f"{PACKAGE}.session" in imported} == {f"{PACKAGE}.api"}


def test_a_cycle_through_several_modules_is_found() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set(), "e": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]


def test_a_cycle_of_type_only_imports_is_found(tmp_path: Path) -> None:
    first, second = tmp_path / "first.py", tmp_path / "second.py"
    first.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.second import B\n", "utf-8")
    second.write_text("def make():\n    from pkg.first import A\n", "utf-8")
    modules = {"pkg.first": first, "pkg.second": second}
    graph = {name: imports_of(name, path, modules) for name, path in modules.items()}
    assert cycles(graph) == [["pkg.first", "pkg.second"]]
