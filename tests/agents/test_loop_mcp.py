"""The agent loop with the real toolbox and real child MCP servers, the model scripted.

The toy server (``servers/toy_server.py``) runs as a child process per test;
every test checks that no child process is left when the run is over.
"""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from orchestrator.agent import AgentSettings, ServerSpec
from orchestrator.agent.loop import TOOL_ERROR_PREFIX, run_agent
from orchestrator.agent.toolbox import open_toolbox
from orchestrator.agent.trace import AgentResult
from tests.agents.agent_support import child_pids, gone, leaky_spec, toy_settings, toy_spec
from tests.agents.loop_support import QWEN, Stack, bodies, sim_stack
from tests.fakes import Reply, ScriptedCall

CHAT = "/v1/chat/completions"
RESPONSES = "/v1/responses"


@pytest.fixture
async def stack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Stack]:
    async with sim_stack(tmp_path, monkeypatch) as s:
        yield s
    assert child_pids() == [], "an MCP server process was left behind"


def call(name: str, id_: str, arguments: dict[str, Any] | str | None = None) -> ScriptedCall:
    return ScriptedCall(name=name, arguments=arguments or {}, id=id_)


async def run(
    stack: Stack,
    settings: AgentSettings,
    specs: list[ServerSpec],
    task: str = "use the tools",
    **kw: Any,
) -> AgentResult:
    with trio.fail_after(60):
        async with open_toolbox(specs, settings) as tools:
            return await run_agent(
                stack.orch, stack.client, tools, task, model=QWEN, settings=settings, **kw
            )


def tool_outputs(body: dict[str, Any]) -> list[tuple[str, str]]:
    return [(m["tool_call_id"], m["content"]) for m in body["messages"] if m["role"] == "tool"]


async def test_chat_task_over_a_real_server_completes(stack: Stack, tmp_path: Path) -> None:
    stack.sim.script(
        QWEN,
        Reply(tool_calls=(call("add", "1", {"a": 20, "b": 22}),)),
        Reply(tool_calls=(call("echo", "2", {"text": "the answer is 42"}),)),
        Reply(content="42"),
    )
    result = await run(stack, toy_settings(tmp_path), [toy_spec()])
    assert (result.answer, result.trace.stop_reason, result.trace.rounds) == ("42", "answer", 3)
    assert [(c.name, c.ok) for c in result.trace.tool_calls] == [("add", True), ("echo", True)]
    sent = bodies(stack.sim, CHAT)
    names = {t["function"]["name"] for t in sent[0]["tools"]}
    assert {"add", "echo", "fail", "read_file"} <= names  # one server: bare names
    assert tool_outputs(sent[2]) == [("1", "42"), ("2", "the answer is 42")]


async def test_responses_task_over_a_real_server_completes(stack: Stack, tmp_path: Path) -> None:
    stack.sim.script(
        QWEN,
        Reply(tool_calls=(call("add", "call_x", {"a": 1, "b": 2}),)),
        Reply(content="3"),
    )
    result = await run(stack, toy_settings(tmp_path), [toy_spec()], api="responses")
    assert (result.answer, result.trace.stop_reason) == ("3", "answer")
    second = bodies(stack.sim, RESPONSES)[1]
    assert second["previous_response_id"] == next(iter(stack.sim.responses))
    assert second["input"] == [{"type": "function_call_output", "call_id": "call_x", "output": "3"}]


async def test_failing_tool_and_malformed_arguments_get_answers_the_model_can_use(
    stack: Stack, tmp_path: Path
) -> None:
    stack.sim.script(
        QWEN,
        Reply(
            tool_calls=(
                call("fail", "1", {"message": "no such branch"}),
                call("add", "2", {"a": "one", "b": 2}),  # schema mismatch
                call("add", "3", '{"a": 1, "b": '),  # not JSON
            )
        ),
        Reply(tool_calls=(call("add", "4", {"a": 1, "b": 2}),)),  # corrected
        Reply(content="3"),
    )
    result = await run(stack, toy_settings(tmp_path), [toy_spec()])
    assert (result.answer, result.trace.stop_reason) == ("3", "answer")
    assert [c.ok for c in result.trace.tool_calls] == [False, False, False, True]
    outputs = dict(tool_outputs(bodies(stack.sim, CHAT)[1]))
    assert outputs["1"].startswith(TOOL_ERROR_PREFIX)
    # The SDK server hides the exception's text; the tool name and the failure get through.
    assert "Tool fail reported an error" in outputs["1"]
    for key in ("2", "3"):  # a correction request naming the tool and its schema
        assert outputs[key].startswith(TOOL_ERROR_PREFIX)
        assert "add" in outputs[key]
        assert '"b"' in outputs[key] or "'b'" in outputs[key]


async def test_a_dying_server_s_env_secret_stays_out_of_the_trace_and_the_model(
    stack: Stack, tmp_path: Path
) -> None:
    token = "loop-leaky-s3cret"
    stack.sim.script(
        QWEN,
        Reply(tool_calls=(call("crash", "1"),)),
        Reply(tool_calls=(call("add", "2", {"a": 1, "b": 2}),)),
        Reply(content="gone"),
    )
    result = await run(stack, toy_settings(tmp_path), [leaky_spec(tmp_path, token, "serve")])
    assert result.trace.stop_reason == "answer"
    assert [c.ok for c in result.trace.tool_calls] == [False, False]
    assert any("my token is [REDACTED]" in e for e in result.trace.errors)
    sent = bodies(stack.sim, CHAT)
    assert "my token is [REDACTED]" in tool_outputs(sent[1])[0][1]
    assert token not in repr(result.trace.errors) + repr(result.trace.tool_calls) + repr(sent)


async def test_parallel_calls_to_two_servers_are_namespaced_and_ordered(
    stack: Stack, tmp_path: Path
) -> None:
    stack.sim.script(
        QWEN,
        Reply(
            tool_calls=(
                call("one__echo", "a", {"text": "from one"}),
                call("two__add", "b", {"a": 2, "b": 3}),
                call("one__add", "c", {"a": 4, "b": 4}),
            )
        ),
        Reply(content="done"),
    )
    specs = [toy_spec("one"), toy_spec("two")]
    result = await run(stack, toy_settings(tmp_path), specs)
    assert result.trace.servers == ("one", "two")
    assert result.trace.stop_reason == "answer"
    assert tool_outputs(bodies(stack.sim, CHAT)[1]) == [("a", "from one"), ("b", "5"), ("c", "8")]


async def git_repo(path: Path) -> Path:
    path.mkdir()
    env = {"GIT_CONFIG_GLOBAL": "/dev/null", "GIT_CONFIG_NOSYSTEM": "1"}
    for argv in (
        ["git", "init", "-q", "-b", "main"],
        ["git", "config", "user.name", "Agent Test"],
        ["git", "config", "user.email", "agent@example.invalid"],
    ):
        await trio.run_process(argv, cwd=path, env={**os.environ, **env})
    (path / "notes.txt").write_text("remember the milk\n")
    return path


async def test_a_published_server_mcp_server_git_does_real_work(
    stack: Stack, tmp_path: Path
) -> None:
    repo = str(await git_repo(tmp_path / "repo"))
    git = ServerSpec(
        name="git",
        transport="stdio",
        command=str(Path(sys.executable).parent / "mcp-server-git"),
        args=("--repository", repo),
    )
    stack.sim.script(
        QWEN,
        Reply(tool_calls=(call("git_status", "1", {"repo_path": repo}),)),
        Reply(tool_calls=(call("git_add", "2", {"repo_path": repo, "files": ["notes.txt"]}),)),
        Reply(tool_calls=(call("git_commit", "3", {"repo_path": repo, "message": "Add notes"}),)),
        Reply(tool_calls=(call("git_log", "4", {"repo_path": repo, "max_count": "many"}),)),
        Reply(tool_calls=(call("git_log", "5", {"repo_path": repo, "max_count": 1}),)),
        Reply(content="Committed notes.txt as 'Add notes'."),
    )
    result = await run(stack, toy_settings(tmp_path), [git], task="commit notes.txt")
    assert result.trace.stop_reason == "answer"
    assert [(c.name, c.ok) for c in result.trace.tool_calls] == [
        ("git_status", True),
        ("git_add", True),
        ("git_commit", True),
        ("git_log", False),  # "many" is not an integer: a correction request, not a crash
        ("git_log", True),
    ]
    outputs = dict(tool_outputs(bodies(stack.sim, CHAT)[-1]))
    assert "notes.txt" in outputs["1"]  # untracked, as git status says
    assert outputs["4"].startswith(TOOL_ERROR_PREFIX)
    assert "max_count" in outputs["4"]
    assert "Add notes" in outputs["5"]
    # The commit is real.
    log = await trio.run_process(["git", "log", "--format=%s"], cwd=repo, capture_stdout=True)
    assert log.stdout.decode().split() == ["Add", "notes"]


async def test_deadline_stops_a_run_stuck_in_a_hanging_tool(stack: Stack, tmp_path: Path) -> None:
    stack.sim.script(QWEN, Reply(tool_calls=(call("slow", "1"),)), Reply(content="never"))
    settings = toy_settings(tmp_path, deadline_s=1.5, call_timeout_s=30.0)
    result = await run(stack, settings, [toy_spec()])
    assert (result.trace.stop_reason, result.trace.rounds) == ("deadline", 1)
    assert result.trace.tool_calls == []  # the call never finished
    assert stack.sim.count(CHAT) == 1


async def test_cancelling_a_run_mid_tool_leaves_no_child_process(
    stack: Stack, tmp_path: Path
) -> None:
    stack.sim.script(
        QWEN, Reply(tool_calls=(call("pid", "1"),)), Reply(tool_calls=(call("slow", "2"),))
    )
    settings = toy_settings(tmp_path, call_timeout_s=30.0)
    finished: list[bool] = []

    async def runner(cancel: trio.CancelScope) -> None:
        with cancel:
            await run(stack, settings, [toy_spec()])
            finished.append(True)

    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            scope = trio.CancelScope()
            nursery.start_soon(runner, scope)
            # Cancel once the model has the server's pid back and has asked for the slow tool.
            await stack.sim.wait_for(lambda: stack.sim.count(CHAT) == 2)
            await trio.testing.wait_all_tasks_blocked()
            [(_, pid)] = tool_outputs(bodies(stack.sim, CHAT)[1])
            assert int(pid) in child_pids()
            scope.cancel()
    assert finished == []
    await gone(int(pid))
    assert child_pids() == []
    # The lease went back too.
    await trio.testing.wait_all_tasks_blocked()
    assert [s.in_flight for s in stack.orch.status()] == [0]
