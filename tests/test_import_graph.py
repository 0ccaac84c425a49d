"""The project's module layout: no import cycle, and no module over 400 lines.

The import graph is read statically: every module of ``orchestrator``,
``mcp_frontend`` and ``benchmarks`` is parsed with :mod:`ast` and every import
in it counts, at module level or inside a function, and under
``if TYPE_CHECKING:`` too. Counting the deferred ones is the stricter choice:
an import moved into a function to dodge a cycle still ties the two modules
together, and a cycle hidden behind ``TYPE_CHECKING`` is one edit away from a
real one.

An import names the module that defines what it uses: ``from pkg.mod import X``
is an edge to ``pkg.mod`` only, not to ``pkg/__init__`` (which Python runs
first, but which every submodule would otherwise seem to import, a false cycle
with any ``__init__`` that imports its submodules). ``from pkg import X`` is an
edge to ``pkg.X`` when that is a module, else to ``pkg`` itself: then the
package's ``__init__`` is really what is imported.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("orchestrator", "mcp_frontend", "benchmarks")
SIZED_PACKAGES = ("orchestrator", "mcp_frontend")
MAX_LINES = 400


def _modules() -> dict[str, Path]:
    """Every module of :data:`PACKAGES` by dotted name (a package by its own name)."""
    found: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def _base(module: str, path: Path, level: int) -> str:
    """The package a relative import of ``level`` dots starts from."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for _ in range(level - 1):
        package = package.rpartition(".")[0]
    return package


def _known(name: str, modules: dict[str, Path]) -> str | None:
    """``name`` or its longest prefix that is a project module (``None``: not ours)."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def _targets(module: str, path: Path, modules: dict[str, Path]) -> Iterator[str]:
    """The project modules ``module`` imports, anywhere in its source."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if (target := _known(alias.name, modules)) is not None:
                    yield target
        elif isinstance(node, ast.ImportFrom):
            source = node.module or ""
            if node.level:
                base = _base(module, path, node.level)
                source = f"{base}.{source}" if source else base
            for alias in node.names:
                target = _known(f"{source}.{alias.name}", modules)
                if target is None or not target.startswith(f"{source}."):
                    target = _known(source, modules)  # a name defined in ``source`` itself
                if target is not None:
                    yield target


def import_graph() -> dict[str, set[str]]:
    """Each project module and the project modules it imports (itself excluded)."""
    modules = _modules()
    return {
        name: {t for t in _targets(name, path, modules) if t != name}
        for name, path in modules.items()
    }


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a path (its first module repeated at the end), or ``None``."""
    done: set[str] = set()
    for start in sorted(graph):
        if start in done:
            continue
        # Depth-first, iteratively: the path so far and, per step, the edges left to try.
        path = [start]
        on_path = {start}
        pending = [iter(sorted(graph[start]))]
        while pending:
            nxt = next(pending[-1], None)
            if nxt is None:
                finished = path.pop()
                on_path.discard(finished)
                done.add(finished)
                pending.pop()
                continue
            if nxt in on_path:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in done:
                path.append(nxt)
                on_path.add(nxt)
                pending.append(iter(sorted(graph[nxt])))
    return None


def test_the_graph_sees_imports_inside_functions_and_for_type_checking() -> None:
    graph = import_graph()

    # mcp_frontend/__init__ imports the server lazily and under TYPE_CHECKING only.
    assert "mcp_frontend.server" in graph["mcp_frontend"]
    # The serve command imports the app only inside run().
    assert "mcp_frontend.transports.serve" in graph["mcp_frontend.commands.serve"]
    # ``from orchestrator import messages`` is the submodule, not the package's __init__.
    assert "orchestrator.messages" in graph["orchestrator.api"]
    assert "orchestrator" not in graph["orchestrator.api"]
    # ``from orchestrator import State`` is the package's __init__, which defines the name.
    assert "orchestrator" in graph["mcp_frontend.resources"]


def test_relative_imports_resolve_from_the_importing_package(tmp_path: Path) -> None:
    (tmp_path / "pkg" / "sub").mkdir(parents=True)
    source = "from . import b\nfrom .b import X\nfrom .. import top\nfrom ..sub import c\n"
    (tmp_path / "pkg" / "sub" / "a.py").write_text(source)
    names = ("pkg", "pkg.top", "pkg.sub", "pkg.sub.b", "pkg.sub.c")
    modules = dict.fromkeys(names, tmp_path / "unused.py")  # only the names are looked at

    found = set(_targets("pkg.sub.a", tmp_path / "pkg" / "sub" / "a.py", modules))

    assert found == {"pkg.sub.b", "pkg.top", "pkg.sub.c"}


def test_find_cycle_reports_the_cycle_path() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}

    assert find_cycle(graph) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_no_import_cycle_anywhere() -> None:
    cycle = find_cycle(import_graph())

    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_no_module_is_over_400_lines() -> None:
    too_long = {
        str(path.relative_to(ROOT)): lines
        for package in SIZED_PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
        if (lines := len(path.read_bytes().splitlines())) > MAX_LINES
    }

    assert too_long == {}, f"modules over {MAX_LINES} lines: {too_long}"
