"""Every test and test file ``docs/reliability.md`` cites exists.

The doc names tests as proof of its promises (the fault matrix, the hostile
input table); a renamed or deleted test would leave a promise unproved without
anyone noticing. Names are read from the doc's backticked ``test_...`` spans,
with a parametrization suffix (``[False/True]``) stripped, and looked up as
``def`` or ``async def`` in the test tree; cited files are looked up by name.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "reliability.md"
TESTS = ROOT / "tests"

_CITED = re.compile(r"`(test_[A-Za-z0-9_]+)(?:\[[^\]`]*\])?(\.py)?`")
_PATHS = re.compile(r"`((?:tests|mcp_frontend|orchestrator)/[A-Za-z0-9_/]+\.py)`")
_DEF = re.compile(r"^\s*(?:async\s+)?def\s+(test_[A-Za-z0-9_]+)\s*\(", re.MULTILINE)


def _cited() -> tuple[set[str], set[str]]:
    text = DOC.read_text(encoding="utf-8")
    tests: set[str] = set()
    files: set[str] = set()
    for name, suffix in _CITED.findall(text):
        (files if suffix else tests).add(name + suffix)
    return tests, files


def _defined() -> tuple[set[str], set[str]]:
    tests: set[str] = set()
    files: set[str] = set()
    for path in TESTS.rglob("*.py"):
        files.add(path.name)
        tests |= set(_DEF.findall(path.read_text(encoding="utf-8")))
    return tests, files


def test_the_doc_cites_tests() -> None:
    tests, files = _cited()

    # The fault matrix alone cites well over 30; an empty set means the pattern broke.
    assert len(tests) >= 30
    assert {"test_hostile_arguments.py", "test_remote_fetch.py"} <= files
    assert "tests/reliability/test_chaos_soak.py" in _PATHS.findall(DOC.read_text("utf-8"))


def test_every_test_the_doc_cites_exists() -> None:
    cited, _ = _cited()
    defined, _ = _defined()

    assert sorted(cited - defined) == []


def test_every_test_file_and_path_the_doc_cites_exists() -> None:
    _, cited = _cited()
    _, defined = _defined()
    paths = set(_PATHS.findall(DOC.read_text(encoding="utf-8")))

    assert sorted(cited - defined) == []
    assert sorted(p for p in paths if not (ROOT / p).is_file()) == []
