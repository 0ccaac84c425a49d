"""The core is closed: a message or effect that nobody handles does not type-check.

``decide()`` matches over the ``Message`` union and the actor over the ``Effect``
union, each ending in ``case _: assert_never(...)``. Adding a member to either
union without handling it must therefore be a ``mypy --strict`` error, not a
message silently ignored at run time. This test proves it on a scratch copy of
the package with one new member in each union.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
_UNHANDLED = re.compile(
    r'orchestrator/(\w+\.py):\d+: error: Argument 1 to "assert_never" has incompatible type "(\w+)"'
)


def _add_member(path: Path, union: str, base: str, name: str) -> None:
    text = path.read_text()
    head = f"{union}: TypeAlias = (\n    "
    assert text.count(head) == 1, f"{path.name} no longer declares {union} as expected"
    scratch = f'class {name}({base}, frozen=True):\n    """Added by the test."""\n\n\n'
    path.write_text(text.replace(head, f"{scratch}{head}{name}\n    | "))


def test_an_unhandled_message_or_effect_is_a_type_error(tmp_path: Path) -> None:
    shutil.copytree(
        ROOT / "orchestrator",
        tmp_path / "orchestrator",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    _add_member(tmp_path / "orchestrator" / "messages.py", "Message", "_Msg", "ScratchMessage")
    _add_member(tmp_path / "orchestrator" / "effects.py", "Effect", "_Effect", "ScratchEffect")
    cache = tmp_path / "mypy_cache"
    if (ROOT / ".mypy_cache").is_dir():  # reuse what the main mypy run learnt of the libraries
        shutil.copytree(ROOT / ".mypy_cache", cache)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--warn-unreachable",
            "--no-error-summary",
            "--cache-dir",
            str(cache),
            "orchestrator/policy.py",
            "orchestrator/actor.py",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    errors = [line for line in result.stdout.splitlines() if ": error:" in line]
    found = {(m[1], m[2]) for line in errors if (m := _UNHANDLED.search(line))}
    assert found == {("policy.py", "ScratchMessage"), ("actor.py", "ScratchEffect")}, (
        result.stdout + result.stderr
    )
    assert len(errors) == 2, result.stdout  # nothing else broke: only the unhandled cases
