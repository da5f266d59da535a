"""The layout the README promises: libraries never import the service, the API and the UI never import
each other, and no module imports itself back through others (imports inside functions included)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("models", "monitors", "training", "ingest", "service")
LIBRARIES = ("models", "monitors", "training", "ingest")


def _module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (REPO / package).rglob("*.py"):
            if "migrations" not in path.parts:
                found[_module_name(path)] = path
    return found


def _imports(path: Path, name: str, known: set[str]) -> set[str]:
    """Crosswalk modules a module imports, anywhere in it: `from a import b` counts as a.b when a.b is a module."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(
                    package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else [])
                )
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
        else:
            continue
        out |= {t for t in targets if t.split(".")[0] in PACKAGES and t in known}
    return out - {name}


GRAPH = {name: _imports(path, name, set(_modules())) for name, path in _modules().items()}


@pytest.mark.parametrize("library", LIBRARIES)
def test_libraries_never_import_the_service(library):
    offenders = {
        m: sorted(i for i in deps if i.startswith("service")) for m, deps in GRAPH.items() if m.startswith(library)
    }
    assert {m: d for m, d in offenders.items() if d} == {}


def test_the_api_and_the_ui_do_not_import_each_other():
    crossing = {
        m: sorted(d)
        for m, deps in GRAPH.items()
        if (
            d := {
                i
                for i in deps
                if (m.startswith("service.ui") and i.startswith("service.api"))
                or (m.startswith("service.api") and i.startswith("service.ui"))
            }
        )
    }
    assert crossing == {}


def test_no_import_circle():
    """A package importing its own submodules (`service.cli` registering its groups) is not a circle."""
    edges = {m: {d for d in deps if not m.startswith(d + ".")} for m, deps in GRAPH.items()}
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(module: str) -> list[str] | None:
        state[module] = 1
        path.append(module)
        for dep in sorted(edges.get(module, ())):
            if dep in edges and dep.startswith(module + "."):
                continue
            if state.get(dep) == 1:
                return path[path.index(dep) :] + [dep]
            if state.get(dep) is None and (circle := visit(dep)):
                return circle
        path.pop()
        state[module] = 2
        return None

    for module in sorted(edges):
        if state.get(module) is None and (circle := visit(module)):
            pytest.fail("import circle: " + " -> ".join(circle))
