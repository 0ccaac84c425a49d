"""Every ``lmsorch`` command turns an expected failure into one line and a non-zero exit.

``lmsorch demo`` is left out here: it reconfigures logging for its timeline, which
would leak into the tests after it; ``tests/e2e/test_demo.py`` runs it as a process.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from mcp_frontend.cli import main


@pytest.fixture
def a_file(tmp_path: Path) -> Path:
    path = tmp_path / "a-file"
    path.write_text("not a directory")
    return path


@pytest.mark.parametrize(
    ("argv", "code", "says"),
    [
        (["models", "fetch-demo", "--models-dir", "{file}"], 2, "is a file, not a directory"),
        (["models", "fetch-demo", "--models-dir", "/proc/no/such"], 1, "No such file"),
        (["statechart", "--write", "/proc/no/such"], 1, "No such file"),
        (["status", "--url", "http://127.0.0.1:1"], 1, "cannot reach"),
        (["serve", "--config", "/no/such/lmsorch.toml"], 2, "cannot read config file"),
    ],
)
def test_an_expected_failure_is_one_line(
    argv: list[str],
    code: int,
    says: str,
    a_file: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    assert main([arg.replace("{file}", str(a_file)) for arg in argv]) == code
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert says in err[0]
    assert "Traceback" not in err[0]
