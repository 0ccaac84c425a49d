"""Every example in docs/multi-model.md runs, and gives what the guide shows.

An example starts at ``<!-- example: NAME -->`` and ends at the next example or
``##`` heading. Its fenced blocks:

- ``toml``: the server's configuration for the example (``Config`` fields);
- ``mcp``: tool calls and their results, run through the real MCP tools against the
  LM Studio simulator (with the fake ``lms``). ``> tool {json}`` is a call (``A>``
  and ``B>``: two clients of one server); the lines after it, up to the next call,
  are its result: JSON whose shape the real result must have (every key shown,
  with the value shown; ``"..."`` stands for any value; keys not shown may exist;
  lists have the length shown), or ``error: TEXT``, an error result containing TEXT;
- ``python`` then ``text``: a program (on ``FakeBackend``) and exactly what it prints.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import tomllib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import pytest
import trio
from mcp import Client
from mcp.types import TextContent

from mcp_frontend.server import build_server
from orchestrator import Config, open_orchestrator
from orchestrator.inference import InferenceClient
from tests.fakes import open_simulator
from tests.fakes.fixtures import install_fake_lms, make_backend
from tests.mcp_frontend.mcp_support import EMBED, FAST, QWEN, make_settings

GUIDE = Path(__file__).resolve().parent.parent / "docs" / "multi-model.md"
ANY = "..."


@dataclass
class Example:
    """One example of the guide: its name and fenced blocks, in order."""

    name: str
    blocks: list[tuple[str, str]] = field(default_factory=list)

    def block(self, lang: str) -> str | None:
        return next((body for kind, body in self.blocks if kind == lang), None)


def examples() -> list[Example]:
    """The examples of the guide, in order."""
    found: list[Example] = []
    current: Example | None = None
    fence: tuple[str, list[str]] | None = None
    for line in GUIDE.read_text(encoding="utf-8").splitlines():
        if fence is not None:
            if line.startswith("```"):
                if current is not None:
                    current.blocks.append((fence[0], "\n".join(fence[1])))
                fence = None
            else:
                fence[1].append(line)
        elif marker := re.fullmatch(r"<!-- example: ([a-z0-9-]+) -->", line.strip()):
            current = Example(marker.group(1))
            found.append(current)
        elif line.startswith("## "):
            current = None
        elif line.startswith("```"):
            fence = (line[3:].strip(), [])
    return found


EXAMPLES = examples()


def matches(shown: Any, real: Any, where: str = "$") -> list[str]:
    """How ``real`` differs from the shape ``shown`` (empty: it has that shape)."""
    if shown == ANY:
        return []
    if isinstance(shown, dict):
        if not isinstance(real, dict):
            return [f"{where}: expected an object, got {real!r}"]
        problems = [f"{where}.{k}: missing" for k in shown if k not in real]
        for key in shown.keys() & real.keys():
            problems += matches(shown[key], real[key], f"{where}.{key}")
        return problems
    if isinstance(shown, list):
        if not isinstance(real, list) or len(real) != len(shown):
            return [f"{where}: expected {len(shown)} items, got {real!r}"]
        return [
            p
            for i, (s, r) in enumerate(zip(shown, real, strict=True))
            for p in matches(s, r, f"{where}[{i}]")
        ]
    return [] if shown == real else [f"{where}: expected {shown!r}, got {real!r}"]


@dataclass
class Call:
    client: str
    tool: str
    arguments: dict[str, Any]
    expected: str


def calls(script: str) -> list[Call]:
    """The calls of an ``mcp`` block, each with the text of its expected result."""
    parsed: list[Call] = []
    for line in script.splitlines():
        call = re.match(r"^([AB]?)> (\w+)(?: (.*))?$", line)
        if call:
            client, tool, args = call.groups()
            parsed.append(Call(client or "A", tool, json.loads(args or "{}"), ""))
        else:
            assert parsed, f"a result before any call: {line!r}"
            parsed[-1].expected += line + "\n"
    return parsed


@asynccontextmanager
async def lmstudio_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, overrides: dict[str, Any]
) -> AsyncIterator[dict[str, Client]]:
    """Two MCP clients of one server over the simulator, configured with ``overrides``."""
    lms = install_fake_lms(monkeypatch, tmp_path)
    config = msgspec.structs.replace(
        FAST, default_model=QWEN, default_embedding_model=EMBED, **overrides
    )
    settings = make_settings(tmp_path)
    async with open_simulator(jit=False) as sim, InferenceClient(timeout_s=10) as inference:
        backend = make_backend(sim, lms_cli=lms)
        try:
            async with open_orchestrator(backend, config) as orch:
                server = build_server(orch, settings=settings, inference_client=inference)
                async with Client(server) as a, Client(server) as b:
                    yield {"A": a, "B": b}
        finally:
            await backend.aclose()


def test_the_guide_has_at_least_ten_examples_each_checked() -> None:
    assert len(EXAMPLES) >= 10
    assert len({e.name for e in EXAMPLES}) == len(EXAMPLES), "example names must be unique"
    for example in EXAMPLES:
        kinds = [kind for kind, _ in example.blocks]
        assert "mcp" in kinds or ("python" in kinds and "text" in kinds), example.name


def test_the_shape_check_catches_differences() -> None:
    assert matches({"a": 1, "b": [ANY]}, {"a": 1, "b": [7], "c": 0}) == []
    assert matches({"a": 1}, {"a": 2}) == ["$.a: expected 1, got 2"]
    assert matches({"a": 1}, {}) == ["$.a: missing"]
    assert matches([ANY, ANY], [1]) == ["$: expected 2 items, got [1]"]


MCP_EXAMPLES = [e for e in EXAMPLES if e.block("mcp") is not None]
PY_EXAMPLES = [e for e in EXAMPLES if e.block("python") is not None]


@pytest.mark.parametrize("example", MCP_EXAMPLES, ids=[e.name for e in MCP_EXAMPLES])
async def test_mcp_example(
    example: Example, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    overrides = tomllib.loads(example.block("toml") or "")
    Config(**overrides)  # the shown configuration is valid as written
    script = example.block("mcp")
    assert script is not None
    (tmp_path / "images").mkdir()
    async with lmstudio_server(tmp_path, monkeypatch, overrides) as clients:
        for call in calls(script.replace("$IMAGES", str(tmp_path / "images"))):
            with trio.fail_after(30):
                result = await clients[call.client].call_tool(call.tool, call.arguments)
            expected = call.expected.strip()
            where = f"{example.name}: {call.tool} {call.arguments}"
            if expected.startswith("error: "):
                block = result.content[0]
                assert isinstance(block, TextContent)
                assert result.is_error, (where, result.structured_content)
                assert expected.removeprefix("error: ") in block.text, (where, block.text)
            else:
                assert not result.is_error, (where, result.content)
                problems = matches(json.loads(expected), result.structured_content)
                assert not problems, (where, problems)


@pytest.mark.parametrize("example", PY_EXAMPLES, ids=[e.name for e in PY_EXAMPLES])
def test_python_example(example: Example) -> None:
    code, shown = example.block("python"), example.block("text")
    assert code is not None, example.name
    assert shown is not None, example.name
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, f"<{example.name}>", "exec"), {"__name__": "__main__"})
    assert out.getvalue().rstrip("\n") == shown.rstrip("\n")
