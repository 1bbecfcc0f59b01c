"""The import graph of a source tree, read with `ast` (nothing is imported): for the
architecture tests. Type-only imports (under `if TYPE_CHECKING:`) count as imports."""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Import:
    module: str  # the importing module
    target: str  # the imported module (the longest name that is a module of the tree)
    name: str  # what the statement names (a module outside the tree keeps its full name)
    line: int


def modules(root: Path, packages: tuple[str, ...]) -> dict[str, Path]:
    """Dotted module name -> file, for every .py file under root/<package>."""
    found: dict[str, Path] = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def imports(root: Path, packages: tuple[str, ...]) -> list[Import]:
    """Every import statement in the tree, with relative imports resolved."""
    mods = modules(root, packages)
    out: list[Import] = []
    for module, path in mods.items():
        is_package = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = module.split(".")
                    anchor = anchor[: len(anchor) - node.level + (1 if is_package else 0)]
                    base = ".".join([*anchor, base] if base else anchor)
                names = [f"{base}.{alias.name}" for alias in node.names] or [base]
            for name in names:
                target = name
                while target and target not in mods:
                    target = target.rpartition(".")[0]
                out.append(Import(module, target or name, name, node.lineno))
    return out


def circles(root: Path, packages: tuple[str, ...]) -> list[list[str]]:
    """Import circles between modules of the tree, each as [a, b, ..., a]. A package's import
    of its own submodules (or a submodule's of its package) is not a circle: Python loads the
    package first."""
    mods = modules(root, packages)
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for imp in imports(root, packages):
        t = imp.target
        if t in mods and t != imp.module and not imp.module.startswith(t + "."):
            graph[imp.module].add(t)
    found: set[tuple[str, ...]] = set()
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(v: str) -> None:
        state[v] = 1
        path.append(v)
        for w in sorted(graph[v]):
            if state.get(w) == 1:
                cycle = path[path.index(w):]
                k = cycle.index(min(cycle))  # one spelling per circle
                found.add(tuple(cycle[k:] + cycle[:k]))
            elif w not in state:
                visit(w)
        path.pop()
        state[v] = 2

    for v in sorted(graph):
        if v not in state:
            visit(v)
    return [[*c, c[0]] for c in sorted(found)]
