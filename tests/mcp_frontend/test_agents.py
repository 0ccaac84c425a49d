"""The agent tools through the in-memory MCP client.

The simulator plays the model; the toy MCP server (a real child process)
provides the tools.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import pytest
import trio
from mcp import Client

from mcp_frontend.server import build_server
from orchestrator import open_orchestrator
from orchestrator.agent import AgentSettings
from orchestrator.inference import InferenceClient
from tests.agents.agent_support import child_pids, toy_entry, write_mcp_json
from tests.fakes import Reply, ScriptedCall, Simulator, open_simulator
from tests.fakes.fixtures import install_fake_lms, make_backend
from tests.mcp_frontend.mcp_support import FAST, QWEN, error, make_settings, ok

SECRET = "s3cret-value-never-shown"
CHAT = "/v1/chat/completions"


@dataclass
class Agents:
    sim: Simulator
    client: Client


def servers_file(tmp_path: Path) -> Path:
    return write_mcp_json(
        tmp_path / "mcp.json",
        {
            "toy": toy_entry(env={"TOY_TOKEN": SECRET}),
            "other": toy_entry(),
            "broken": toy_entry("exit"),
            "remote": {
                "type": "http",
                "url": "http://127.0.0.1:9/mcp",
                "headers": {"Authorization": f"Bearer {SECRET}"},
            },
            "denied": toy_entry(),
            "bad": {"args": ["no command"]},
        },
    )


@asynccontextmanager
async def open_agents(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, agent_settings: AgentSettings
) -> AsyncIterator[Agents]:
    """The server over the simulator (default model QWEN) with ``agent_settings``, and a client."""
    lms = install_fake_lms(monkeypatch, tmp_path)
    config = msgspec.structs.replace(FAST, default_model=QWEN)
    async with open_simulator(jit=False) as sim, InferenceClient(timeout_s=10) as inference:
        backend = make_backend(sim, lms_cli=lms)
        try:
            async with open_orchestrator(backend, config) as orch:
                server = build_server(
                    orch,
                    settings=make_settings(tmp_path),
                    inference_client=inference,
                    agent_settings=agent_settings,
                )
                async with Client(server) as client:
                    yield Agents(sim=sim, client=client)
        finally:
            await backend.aclose()
    assert child_pids() == [], "an MCP server process was left behind"


@pytest.fixture
async def agents(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Agents]:
    agent_settings = AgentSettings(
        mcp_config=str(servers_file(tmp_path)),
        deny=("denied",),
        roots=(str(tmp_path),),
        max_rounds=5,
        max_rounds_cap=10,
        deadline_s=30.0,
        start_timeout_s=20.0,
    )
    async with open_agents(tmp_path, monkeypatch, agent_settings) as stack:
        yield stack


def call(name: str, id_: str, **arguments: Any) -> ScriptedCall:
    return ScriptedCall(name=name, arguments=arguments, id=id_)


async def test_list_available_mcps_shows_servers_without_secrets(agents: Agents) -> None:
    with trio.fail_after(40):
        result = await agents.client.call_tool("list_available_mcps", {})
    out = ok(result)
    assert SECRET not in result.model_dump_json()
    assert SECRET not in msgspec.json.encode(out).decode()
    servers = {s["name"]: s for s in out["servers"]}
    assert sorted(servers) == ["broken", "other", "remote", "toy"]  # denied and bad left out
    assert servers["toy"]["transport"] == "stdio"
    assert servers["toy"]["env"] == ["TOY_TOKEN"]  # the name only
    assert (servers["toy"]["reachable"], servers["toy"]["reason"]) == (True, None)
    assert servers["broken"]["reachable"] is False
    assert servers["broken"]["reason"]
    assert servers["remote"]["url"] == "http://127.0.0.1:9/mcp"
    assert servers["remote"]["headers"] == ["Authorization"]
    assert servers["remote"]["reachable"] is False
    assert list(out["invalid"]) == ["bad"]
    assert out["source"].endswith("mcp.json")


async def test_list_without_check_starts_nothing(agents: Agents) -> None:
    out = ok(await agents.client.call_tool("list_available_mcps", {"check": False}))
    assert {s["reachable"] for s in out["servers"]} == {None}
    assert child_pids() == []


async def test_autonomous_with_mcp_runs_a_task_and_reports_progress(agents: Agents) -> None:
    agents.sim.script(
        QWEN,
        Reply(tool_calls=(call("add", "1", a=2, b=3),)),
        Reply(content="<think>add them</think>2 + 3 = 5"),  # inline reasoning
    )
    seen: list[tuple[float, float | None, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append((progress, total, message))

    with trio.fail_after(40):
        result = await agents.client.call_tool(
            "autonomous_with_mcp",
            {"mcp_name": "toy", "task": "add 2 and 3", "max_rounds": 5},
            progress_callback=on_progress,
        )
    out = ok(result)
    assert (out["answer"], out["reasoning"], out["success"]) == ("2 + 3 = 5", "add them", True)
    trace = out["trace"]
    assert (trace["stop_reason"], trace["rounds"], trace["servers"]) == ("answer", 2, ["toy"])
    assert [(c["name"], c["ok"]) for c in trace["tool_calls"]] == [("add", True)]
    assert [(p, t) for p, t, _ in seen] == [(0, 5), (1, 5), (2, 5)]
    assert seen[1][2] == "round 1: called add"
    tool = agents.sim.requests(CHAT)[1].body["messages"][-1]
    assert tool == {"role": "tool", "tool_call_id": "1", "content": "5"}


async def test_a_bounded_run_is_a_result_not_an_error(agents: Agents) -> None:
    agents.sim.script(QWEN, *(Reply(tool_calls=(call("add", str(i), a=i, b=i),)) for i in range(4)))
    out = ok(
        await agents.client.call_tool(
            "autonomous_with_mcp",
            {"mcp_name": "toy", "task": "loop", "max_rounds": 2, "api": "responses"},
        )
    )
    assert out["success"] is False
    assert (out["trace"]["stop_reason"], out["trace"]["api"]) == ("max_rounds", "responses")


async def test_multiple_mcps_namespace_their_tools(agents: Agents) -> None:
    agents.sim.script(
        QWEN,
        Reply(tool_calls=(call("toy__add", "1", a=1, b=1), call("other__echo", "2", text="hi"))),
        Reply(content="ok"),
    )
    out = ok(
        await agents.client.call_tool(
            "autonomous_with_multiple_mcps", {"mcp_names": ["toy", "other"], "task": "both"}
        )
    )
    assert out["trace"]["servers"] == ["toy", "other"]
    assert [c["name"] for c in out["trace"]["tool_calls"]] == ["toy__add", "other__echo"]
    names = {t["function"]["name"] for t in agents.sim.requests(CHAT)[0].body["tools"]}
    assert {"toy__add", "other__add", "other__echo"} <= names


async def test_discover_and_execute_leaves_out_the_servers_that_cannot_start(
    agents: Agents,
) -> None:
    agents.sim.script(QWEN, Reply(content="nothing to do"))
    # "broken" cannot start and "remote" is unreachable: the run goes on with the others.
    out = ok(await agents.client.call_tool("autonomous_discover_and_execute", {"task": "anything"}))
    assert out["answer"] == "nothing to do"
    assert sorted(out["trace"]["servers"]) == ["other", "toy"]
    left_out = [e for e in out["trace"]["errors"] if "was left out" in e]
    assert len(left_out) == 2
    assert any("'broken'" in e for e in left_out)
    assert any("'remote'" in e for e in left_out)
    assert SECRET not in str(out)


@pytest.mark.parametrize(
    ("tool", "arguments", "expected"),
    [
        ("autonomous_with_mcp", {"mcp_name": "nope", "task": "x"}, "unknown MCP server 'nope'"),
        ("autonomous_with_mcp", {"mcp_name": "denied", "task": "x"}, "LMSORCH_AGENT_DENY"),
        ("autonomous_with_mcp", {"mcp_name": "broken", "task": "x"}, "'broken' failed"),
        ("autonomous_with_mcp", {"mcp_name": "toy", "task": "x", "max_rounds": 11}, "cap of 10"),
        ("autonomous_with_mcp", {"mcp_name": "toy", "task": ""}, "task"),
        ("autonomous_with_mcp", {"mcp_name": "toy", "task": "x", "model": "no/model"}, "unknown"),
        ("autonomous_with_mcp", {"mcp_name": "toy", "task": "x", "api": "grpc"}, "api"),
        (
            "autonomous_with_multiple_mcps",
            {"mcp_names": ["toy", "toy"], "task": "x"},
            "more than once",
        ),
        ("autonomous_with_multiple_mcps", {"mcp_names": [], "task": "x"}, "mcp_names"),
    ],
)
async def test_bad_requests_get_actionable_errors(
    agents: Agents, tool: str, arguments: dict[str, Any], expected: str
) -> None:
    with trio.fail_after(40):
        message = error(await agents.client.call_tool(tool, arguments))
    assert expected in message
    assert agents.sim.count(CHAT) == 0
