"""``lmsorch statechart --format svg``: Graphviz when installed, a clear message when not."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mcp_frontend.cli import main
from orchestrator.lifecycle import render_dot


def _fake_dot(bin_dir: Path, script: str) -> None:
    bin_dir.mkdir(exist_ok=True)
    dot = bin_dir / "dot"
    dot.write_text(f"#!/bin/sh\n{script}\n", encoding="utf-8")
    dot.chmod(0o755)


def test_svg_without_graphviz_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no dot here
    assert main(["statechart", "--format", "svg"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "needs Graphviz's `dot`" in captured.err
    assert "apt-get install graphviz" in captured.err


def test_svg_with_graphviz_pipes_the_dot_source_through_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    received = tmp_path / "received.dot"
    # A stand-in for Graphviz: keeps what it was given, answers with an SVG.
    _fake_dot(tmp_path / "bin", f'cat > "{received}"\necho "<svg>lifecycle $1</svg>"')
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    assert main(["statechart", "--format", "svg"]) == 0
    assert capsys.readouterr().out == "<svg>lifecycle -Tsvg</svg>\n"
    assert received.read_text(encoding="utf-8") == render_dot()


def test_a_failing_graphviz_is_reported_not_a_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _fake_dot(tmp_path / "bin", 'echo "syntax error in line 1" >&2\nexit 3')
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    assert main(["statechart", "--format", "svg"]) == 1
    err = capsys.readouterr().err
    assert "-Tsvg failed (exit 3): syntax error in line 1" in err


def test_write_regenerates_the_committed_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["statechart", "--write", str(tmp_path / "charts")]) == 0
    committed = Path(__file__).resolve().parents[2] / "statecharts"
    for name in ("model_lifecycle.mmd", "model_lifecycle.dot"):
        assert (tmp_path / "charts" / name).read_text(encoding="utf-8") == (
            committed / name
        ).read_text(encoding="utf-8")
    assert "wrote" in capsys.readouterr().out
