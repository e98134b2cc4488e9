"""The floor plan holds (docs/architecture.md): read from every module's imports, module-level
and inside functions, with `ast`.

- the kernel `phr_core` imports no service, the federation, nor the launcher;
- a package imports only the packages it may (the table below);
- no package imports another package's private (`_name`) module or attribute;
- no import circle among our modules at module level.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("phr_core", "launcher", "idp", "phr_server", "consent", "portal", "connectors",
            "federation")  # fmt: skip
FEDERATION_AND_KERNEL = {"federation", "phr_core"}
# Who may import whom (besides itself).
ALLOWED: dict[str, set[str]] = {
    "launcher": set(PACKAGES) - {"launcher"},
    "portal": {"consent", "federation", "phr_core"},
    "idp": FEDERATION_AND_KERNEL,
    "phr_server": FEDERATION_AND_KERNEL,
    "consent": FEDERATION_AND_KERNEL,
    "connectors": FEDERATION_AND_KERNEL,
    "federation": {"phr_core"},
    "phr_core": set(),
}


@dataclass(frozen=True)
class Import:
    """One imported name as written: `module` is our module (or package) it comes from,
    `name` the attribute taken from it (None for `import x.y` / a submodule)."""

    importer: str
    line: int
    module: str
    name: str | None
    top_level: bool  # executed when the importer is imported (not inside a function)

    @property
    def where(self) -> str:
        return f"{self.importer} (line {self.line})"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {
        _module_name(path): path
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
    }


MODULES = _modules()


def _inside_functions(tree: ast.AST) -> set[int]:
    """ids of the import nodes inside a function or method body."""
    inside: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            inside |= {id(n) for n in ast.walk(node) if isinstance(n, ast.Import | ast.ImportFrom)}
    return inside


def _type_checking_only(tree: ast.AST) -> set[int]:
    """ids of the import nodes under `if TYPE_CHECKING:` (never executed)."""
    out: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            out |= {id(n) for b in node.body for n in ast.walk(b)}
    return out


def _resolve(importer: str, path: Path, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = importer.split(".")
    if path.name != "__init__.py":
        base = base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _imports_of(importer: str, path: Path) -> Iterator[Import]:
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    local = _inside_functions(tree)
    hidden = _type_checking_only(tree)
    for node in ast.walk(tree):
        top = id(node) not in local and id(node) not in hidden
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in PACKAGES:
                    yield Import(importer, node.lineno, alias.name, None, top)
        elif isinstance(node, ast.ImportFrom):
            module = _resolve(importer, path, node)
            if module.split(".")[0] not in PACKAGES:
                continue
            for alias in node.names:
                submodule = f"{module}.{alias.name}"
                if submodule in MODULES:  # `from pkg import module`
                    yield Import(importer, node.lineno, submodule, None, top)
                else:
                    yield Import(importer, node.lineno, module, alias.name, top)


def _all_imports() -> list[Import]:
    return [imp for name, path in MODULES.items() for imp in _imports_of(name, path)]


IMPORTS = _all_imports()


def _package(module: str) -> str:
    return module.split(".")[0]


def test_the_scan_sees_real_imports() -> None:
    """Guards the test itself: known imports of each kind are found."""
    found = {(i.importer, i.module, i.name) for i in IMPORTS}
    assert ("phr_core.config", "phr_core.services", "SERVICES") in found
    assert ("launcher.cli", "launcher.runner", None) in found
    assert any(not i.top_level for i in IMPORTS)  # function-local ones are read too
    assert len(MODULES) > 150


def test_kernel_imports_no_service() -> None:
    """phr_core is the ground floor: configuration, secrets, database, migrations, web-app
    factory, health, tokens. It imports no service, the federation or the launcher."""
    wrong = [
        f"{i.where} imports {i.module}" + (f".{i.name}" if i.name else "")
        for i in IMPORTS
        if _package(i.importer) == "phr_core" and _package(i.module) != "phr_core"
    ]
    assert not wrong, "the kernel imports a package above it:\n" + "\n".join(wrong)


@pytest.mark.parametrize("package", [p for p in PACKAGES if p != "phr_core"])
def test_packages_import_only_what_they_may(package: str) -> None:
    allowed = ALLOWED[package] | {package}
    wrong = [
        f"{i.where} imports {i.module}" + (f".{i.name}" if i.name else "")
        for i in IMPORTS
        if _package(i.importer) == package and _package(i.module) not in allowed
    ]
    assert not wrong, f"{package} may import only {sorted(ALLOWED[package])}:\n" + "\n".join(wrong)


def _private_part(i: Import) -> str | None:
    """The private part of what `i` takes from another package: a `_module` on the way or a
    `_name` attribute (dunder names like `__version__` are public)."""
    parts = i.module.split(".")[1:] + ([i.name] if i.name else [])
    for part in parts:
        if part.startswith("_") and not part.startswith("__"):
            return part
    return None


def test_private_parts_are_recognised() -> None:
    def imp(module: str, name: str | None) -> Import:
        return Import("launcher.x", 1, module, name, True)

    assert _private_part(imp("idp.card.sessions", "_store_attributes")) == "_store_attributes"
    assert _private_part(imp("idp._internal.x", "public")) == "_internal"
    assert _private_part(imp("idp.card.sessions", "CardServices")) is None
    assert _private_part(imp("idp", "__version__")) is None


def test_no_package_imports_another_packages_private_names() -> None:
    wrong = []
    for i in IMPORTS:
        if _package(i.importer) == _package(i.module):
            continue
        private = _private_part(i)
        if private is not None:
            what = i.module + (f".{i.name}" if i.name else "")
            wrong.append(f"{i.where} imports {what} (private: {private})")
    assert not wrong, "private names used across packages:\n" + "\n".join(wrong)


def _module_graph() -> dict[str, set[str]]:
    """Module-level imports between our modules: `from a.b import c` depends on a.b (and on
    a.b.c when that is a module); importing a module runs its packages' __init__ too, which
    here hold no imports of their own worth following, so they are not edges."""
    graph: dict[str, set[str]] = {name: set() for name in MODULES}
    for i in IMPORTS:
        if i.top_level and i.module in MODULES and i.module != i.importer:
            graph[i.importer].add(i.module)
    return graph


def _circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
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
    return sorted(found)


def test_circle_finder_finds_a_circle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert _circles(graph) == [["a", "b", "c"]]
    assert _circles({"a": {"b"}, "b": set()}) == []


def test_no_import_circles() -> None:
    """Modules that import each other at module level cannot be read, tested or moved one at a
    time. (A function-local import that only dodges a circle hides it from this test; the
    rule is not to write one: docs/architecture.md.)"""
    circles = _circles(_module_graph())
    assert not circles, "module-level import circles:\n" + "\n".join(" ↔ ".join(c) for c in circles)
