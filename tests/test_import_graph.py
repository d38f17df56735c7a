"""No import cycles among the modules of any workspace package (imports inside functions count).

The graph is read from the source with `ast`: an edge a -> b when module a imports module b of
the same package (`import p.b`, `from p import b`, `from p.b import x`, `from . import b`).
"""

import ast
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent


def workspace_packages() -> dict[str, Path]:
    """Every importable package of the workspace: name -> its directory (src layout)."""
    root = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    packages: dict[str, Path] = {}
    for member in root["tool"]["uv"]["workspace"]["members"]:
        for init in sorted((REPO_ROOT / member / "src").glob("*/__init__.py")):
            packages[init.parent.name] = init.parent
    return packages


def _modules(package: str, directory: Path) -> dict[str, Path]:
    modules = {}
    for path in sorted(directory.rglob("*.py")):
        parts = [package, *path.relative_to(directory).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def _imported(module: str, path: Path, tree: ast.Module) -> Iterator[str]:
    """Every dotted name this module imports, submodule candidates included."""
    is_package = path.name == "__init__.py"
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = module.split(".")
                base = anchor[: len(anchor) - node.level + (1 if is_package else 0)]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            yield target
            yield from (f"{target}.{alias.name}" for alias in node.names)


def import_graph(package: str, directory: Path) -> dict[str, set[str]]:
    """Module -> the modules of the same package it imports."""
    modules = _modules(package, directory)
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        for target in _imported(name, path, tree):
            # `import p.a.b` also runs p and p.a; an edge to the package itself is never a cycle
            # worth reporting (every module imports its package), so only modules count.
            if target in modules and target != name and target != package:
                graph[name].add(target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for successor in sorted(graph[node]):
            if successor not in index:
                visit(successor)
                low[node] = min(low[node], low[successor])
            elif successor in on_stack:
                low[node] = min(low[node], index[successor])
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


PACKAGES = workspace_packages()


def test_every_workspace_member_is_checked() -> None:
    # A member whose package is not found here would silently escape the check.
    root = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    members = root["tool"]["uv"]["workspace"]["members"]
    assert {PACKAGES[name].parent.parent.name for name in PACKAGES} == set(members)


@pytest.mark.parametrize("package", sorted(PACKAGES))
def test_package_has_no_import_cycle(package: str) -> None:
    graph = import_graph(package, PACKAGES[package])
    assert any(graph.values()), f"no imports found in {package}: the graph is not being read"
    assert cycles(graph) == [], f"import cycles in {package}"


def test_a_cycle_is_found_however_it_is_written(tmp_path: Path) -> None:
    package = tmp_path / "shop"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "orders.py").write_text("from shop import repository\n")
    (package / "repository.py").write_text("def f():\n    from .contract import C\n")
    (package / "contract.py").write_text("import shop.orders\n")
    (package / "routes.py").write_text("from shop.orders import place\n")

    assert cycles(import_graph("shop", package)) == [
        ["shop.contract", "shop.orders", "shop.repository"]
    ]
