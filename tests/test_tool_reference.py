"""docs/tool-reference.md is what the live tool schemas render (regenerate, never hand-edit)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mcp_frontend.cli import main
from mcp_frontend.commands.tool_reference import live_tools, render

REFERENCE = Path(__file__).resolve().parent.parent / "docs" / "tool-reference.md"
REGENERATE = "run: lmsorch tool-reference --write docs/tool-reference.md"


async def test_the_committed_reference_matches_the_live_schemas() -> None:
    assert REFERENCE.read_text(encoding="utf-8") == render(await live_tools()), REGENERATE


async def test_every_tool_and_every_argument_is_in_the_reference() -> None:
    reference = REFERENCE.read_text(encoding="utf-8")
    tools = await live_tools()
    assert len(tools) >= 16
    for tool in tools:
        section = reference.split(f"## `{tool.name}`\n", 1)[1].split("\n## ", 1)[0]
        for argument in tool.input_schema.get("properties", {}):
            assert f"| `{argument}` |" in section, (tool.name, argument)


def test_a_changed_schema_changes_the_rendering() -> None:
    from mcp.types import Tool

    def tool(schema: dict[str, object]) -> Tool:
        return Tool(name="t", description="d", input_schema={"type": "object", **schema})

    one: dict[str, object] = {
        "properties": {"n": {"type": "integer", "minimum": 1}},
        "required": ["n"],
    }
    two: dict[str, object] = {
        "properties": {"n": {"type": "integer", "minimum": 2}},
        "required": ["n"],
    }
    assert "| `n` | integer | yes |  | >= 1 |  |" in render([tool(one)])
    assert render([tool(one)]) != render([tool(two)])


def test_check_fails_on_drift_and_passes_when_regenerated(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "ref.md"
    target.write_text(REFERENCE.read_text(encoding="utf-8") + "hand edit\n", encoding="utf-8")
    assert main(["tool-reference", "--check", str(target)]) == 1
    assert "regenerate: lmsorch tool-reference --write" in capsys.readouterr().err
    assert main(["tool-reference", "--write", str(target)]) == 0
    assert main(["tool-reference", "--check", str(target)]) == 0
    assert main(["tool-reference"]) == 0
    assert capsys.readouterr().out.endswith(target.read_text(encoding="utf-8"))
