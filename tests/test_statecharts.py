"""The committed statecharts are exactly what the table renders (regenerate, never hand-edit)."""

from __future__ import annotations

from pathlib import Path

from mcp_frontend.cli import main
from orchestrator.lifecycle import TRANSITIONS, State, render_dot, render_mermaid

STATECHARTS = Path(__file__).resolve().parent.parent / "statecharts"


def test_committed_mermaid_matches_the_table() -> None:
    committed = (STATECHARTS / "model_lifecycle.mmd").read_text(encoding="utf-8")
    assert committed == render_mermaid(), "run: lmsorch statechart --write statecharts"


def test_committed_dot_matches_the_table() -> None:
    committed = (STATECHARTS / "model_lifecycle.dot").read_text(encoding="utf-8")
    assert committed == render_dot(), "run: lmsorch statechart --write statecharts"


def test_every_edge_of_the_table_is_drawn() -> None:
    mermaid = render_mermaid()
    for edge in TRANSITIONS:
        label = f"{edge.input.value} [{edge.guard.value}]" if edge.guard else edge.input.value
        assert f"{edge.source} --> {edge.dest}: {label}" in mermaid


def test_the_live_chart_marks_the_states_holding_models() -> None:
    chart = render_mermaid({State.READY: ["qwen", "llama"], State.LOADING: []})
    assert "class READY active" in chart
    assert "note right of READY: llama, qwen" in chart
    assert "class LOADING active" not in chart
    assert "classDef active fill:#f9d976,stroke:#c77d00,stroke-width:2px" in chart  # the style
    assert "classDef" not in render_mermaid()


def test_the_cli_prints_the_same_chart(capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["statechart", "--format", "mermaid"]) == 0
    assert capsys.readouterr().out == render_mermaid()
    assert main(["statechart", "--format", "dot"]) == 0
    assert capsys.readouterr().out == render_dot()
