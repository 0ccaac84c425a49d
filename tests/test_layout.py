"""The tests are one package tree: every folder a package, every import ``tests.``-qualified.

A folder without ``__init__.py`` puts itself on ``sys.path`` under pytest's
default import mode, so its helper modules become importable by bare name
(``from fakes import ...``) and two test files of the same name in different
folders collide. Both are closed here.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TESTS = ROOT / "tests"
# Standalone scripts run as programs (the fake ``lms``), never imported.
SCRIPTS = TESTS / "fakes" / "bin"


def _folders() -> list[Path]:
    return sorted(
        d
        for d in [TESTS, *TESTS.rglob("*")]
        if d.is_dir() and d != SCRIPTS and "__pycache__" not in d.parts and any(d.glob("*.py"))
    )


def test_every_test_folder_is_a_package() -> None:
    missing = [str(d.relative_to(ROOT)) for d in _folders() if not (d / "__init__.py").exists()]
    assert missing == []


def test_test_helpers_are_imported_through_the_tests_package() -> None:
    helpers = {d.name for d in _folders() if d != TESTS} - {"orchestrator", "mcp_frontend"}
    helpers |= {p.stem for d in _folders() for p in d.glob("*.py")} - {"__init__", "conftest"}
    bare = []
    for path in [*TESTS.rglob("*.py"), *(ROOT / "benchmarks").rglob("*.py")]:
        if SCRIPTS in path.parents:
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            bare += [
                f"{path.relative_to(ROOT)}:{node.lineno} {name}"
                for name in names
                if name.split(".")[0] in helpers
            ]
    assert bare == []
