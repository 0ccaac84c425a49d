"""``working_directory`` per agent call and the presets, through the in-memory MCP client.

The simulator plays the model; the toy MCP server (a real child process) reads
files relative to the directory it was started in.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio

from orchestrator.agent import AgentSettings
from tests.agents.agent_support import child_pids, toy_entry, write_mcp_json
from tests.fakes import Reply
from tests.mcp_frontend.mcp_support import QWEN, error, ok
from tests.mcp_frontend.test_agents import CHAT, Agents, call, open_agents


@pytest.fixture
async def agents(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Agents]:
    root = tmp_path / "root"
    (root / "project").mkdir(parents=True)
    (root / "project" / "note.txt").write_text("inside the project")
    (root / "elsewhere.txt").write_text("outside the project")
    (tmp_path / "outside").mkdir()
    settings = AgentSettings(
        mcp_config=str(write_mcp_json(tmp_path / "mcp.json", {"toy": toy_entry()})),
        presets=("memory", "github"),
        roots=(str(root),),
        max_rounds=5,
        deadline_s=30.0,
        start_timeout_s=20.0,
    )
    monkeypatch.delenv("GITHUB_PERSONAL_ACCESS_TOKEN", raising=False)
    async with open_agents(tmp_path, monkeypatch, settings) as stack:
        yield stack


def tool_messages(agents: Agents) -> list[str]:
    """The tool results the model was given, from its last request (it holds them all)."""
    last = agents.sim.requests(CHAT)[-1]
    return [m["content"] for m in last.body["messages"] if m["role"] == "tool"]


async def test_the_servers_start_in_the_working_directory(agents: Agents) -> None:
    agents.sim.script(
        QWEN,
        Reply(tool_calls=(call("read_file", "1", path="note.txt"),)),
        Reply(tool_calls=(call("read_file", "2", path="../elsewhere.txt"),)),
        Reply(content="done"),
    )
    with trio.fail_after(40):
        out = ok(
            await agents.client.call_tool(
                "autonomous_with_mcp",
                {"mcp_name": "toy", "task": "read", "working_directory": "project"},
            )
        )
    assert out["answer"] == "done"
    inside, outside = tool_messages(agents)
    assert inside == "inside the project"  # a relative path: the server runs in project/
    # Inside the configured root, but outside this run's working directory: refused.
    assert "../elsewhere.txt" in outside
    assert "is not allowed" in outside
    assert [c["ok"] for c in out["trace"]["tool_calls"]] == [True, False]


@pytest.mark.parametrize(
    ("workdir", "expected"),
    [
        ("../outside", "outside the allowed roots"),
        ("note-that-is-missing", "not an existing directory"),
        (["project", "/etc"], "'/etc' is not allowed"),
    ],
)
async def test_a_working_directory_outside_the_roots_is_refused_before_anything_starts(
    agents: Agents, workdir: str | list[str], expected: str
) -> None:
    with trio.fail_after(20):
        result = await agents.client.call_tool(
            "autonomous_with_mcp", {"mcp_name": "toy", "task": "x", "working_directory": workdir}
        )
    assert expected in error(result)
    assert "LMSORCH_AGENT_ROOTS" in error(result)
    assert child_pids() == []
    assert agents.sim.requests(CHAT) == []


async def test_chosen_presets_are_listed_and_a_missing_token_is_named(agents: Agents) -> None:
    out = ok(await agents.client.call_tool("list_available_mcps", {"check": False}))
    servers = {s["name"]: s for s in out["servers"]}
    assert sorted(servers) == ["memory", "toy"]
    assert servers["memory"]["args"] == ["-y", "@modelcontextprotocol/server-memory"]
    assert "GITHUB_PERSONAL_ACCESS_TOKEN" in out["invalid"]["github"]
    result = await agents.client.call_tool(
        "autonomous_with_mcp", {"mcp_name": "github", "task": "list my issues"}
    )
    assert "environment variable GITHUB_PERSONAL_ACCESS_TOKEN" in error(result)
    assert child_pids() == []
