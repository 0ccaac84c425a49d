"""The agent loop against the LM Studio simulator, with scripted model answers and fake tools.

What the model receives is read back from the simulator's request log, so
the wire shapes are checked as sent, not as built.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any, cast

import msgspec
import pytest
import trio
import trio.testing
from hypothesis import given
from hypothesis import strategies as st

from orchestrator import InvalidRequest, UnknownModel
from orchestrator.agent import AgentSettings, McpServerFailed
from orchestrator.agent.loop import TOOL_ERROR_PREFIX, run_agent
from orchestrator.agent.trace import AgentResult, AgentTrace
from orchestrator.agent.wire import DROPPED_NOTE, Call, ChatWire
from orchestrator.inference import ChatMessage, InferenceClient
from orchestrator.logs import configure_logging
from tests.agents.loop_support import QWEN, SETTINGS, FakeTools, Result, Stack, bodies, sim_stack
from tests.fakes import Reply, ScriptedCall

CHAT = "/v1/chat/completions"
RESPONSES = "/v1/responses"


async def add(args: dict[str, Any]) -> Result:
    return Result(str(args["a"] + args["b"]))


async def fail(_args: dict[str, Any]) -> Result:
    return Result("disk on fire", is_error=True)


def tools(**extra: Any) -> FakeTools:
    return FakeTools({"add": add, "fail": fail, **extra})


def call(name: str, id_: str, **arguments: Any) -> ScriptedCall:
    return ScriptedCall(name=name, arguments=arguments, id=id_)


async def run(stack: Stack, box: FakeTools, task: str = "add 1 and 2", **kw: Any) -> AgentResult:
    settings = kw.pop("settings", SETTINGS)
    with trio.fail_after(30):
        return await run_agent(
            stack.orch, stack.client, box, task, model=QWEN, settings=settings, **kw
        )


@pytest.fixture
async def stack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    async with sim_stack(tmp_path, monkeypatch) as s:
        yield s


# -- chat completions --


async def test_chat_multi_round_task_completes_with_tool_messages(stack: Stack) -> None:
    stack.sim.script(
        QWEN,
        Reply(tool_calls=(call("add", "11", a=1, b=2),)),
        Reply(tool_calls=(call("add", "12", a=3, b=4),), content="now the second"),
        Reply(content="1+2=3 and 3+4=7", reasoning="simple sums"),
    )
    box = tools()
    result = await run(stack, box)

    assert result.answer == "1+2=3 and 3+4=7"
    assert result.reasoning == "simple sums"
    trace = result.trace
    assert (trace.stop_reason, trace.rounds, trace.finish_reason) == ("answer", 3, "stop")
    assert [(c.round, c.name, c.ok) for c in trace.tool_calls] == [
        (1, "add", True),
        (2, "add", True),
    ]
    assert trace.errors == []
    assert box.calls == [("add", '{"a":1,"b":2}'), ("add", '{"a":3,"b":4}')]

    sent = bodies(stack.sim, CHAT)
    assert len(sent) == 3
    assert all("tool_choice" not in b for b in sent)  # never forced
    assert [t["function"]["name"] for t in sent[0]["tools"]] == ["add", "fail"]
    first, last = sent[0]["messages"], sent[2]["messages"]
    assert [m["role"] for m in first] == ["system", "user"]
    assert first[1]["content"] == "add 1 and 2"
    assert [m["role"] for m in last] == ["system", "user", "assistant", "tool", "assistant", "tool"]
    assistant, tool = last[2], last[3]
    assert assistant["tool_calls"] == [
        {"id": "11", "type": "function", "function": {"name": "add", "arguments": '{"a":1,"b":2}'}}
    ]
    assert tool == {"role": "tool", "tool_call_id": "11", "content": "3"}
    assert last[4]["content"] == "now the second"
    assert last[5] == {"role": "tool", "tool_call_id": "12", "content": "7"}


async def test_a_failing_tool_is_reported_to_the_model_and_survived(stack: Stack) -> None:
    stack.sim.script(
        QWEN,
        Reply(tool_calls=(call("fail", "1"),)),
        Reply(tool_calls=(call("nope", "2"),)),
        Reply(content="could not do it"),
    )
    result = await run(stack, tools())
    assert result.trace.stop_reason == "answer"
    assert result.answer == "could not do it"
    assert [(c.name, c.ok, c.error) for c in result.trace.tool_calls] == [
        ("fail", False, "disk on fire"),
        ("nope", False, "unknown tool 'nope'"),
    ]
    assert result.trace.errors == ["fail: disk on fire", "nope: unknown tool 'nope'"]
    messages = bodies(stack.sim, CHAT)[2]["messages"]
    tool_messages = [m for m in messages if m["role"] == "tool"]
    assert [m["content"] for m in tool_messages] == [
        TOOL_ERROR_PREFIX + "disk on fire",
        TOOL_ERROR_PREFIX + "unknown tool 'nope'",
    ]


async def test_a_dead_server_is_a_tool_error_not_a_crash(stack: Stack) -> None:
    async def dead(_args: dict[str, Any]) -> Result:
        raise McpServerFailed("fake", "the process exited with status 1")

    stack.sim.script(QWEN, Reply(tool_calls=(call("dead", "1"),)), Reply(content="gave up"))
    result = await run(stack, tools(dead=dead))
    assert result.trace.stop_reason == "answer"
    [record] = result.trace.tool_calls
    assert not record.ok
    assert record.error is not None
    assert "exited with status 1" in record.error
    tool = bodies(stack.sim, CHAT)[1]["messages"][-1]
    assert tool["content"].startswith(TOOL_ERROR_PREFIX)


async def test_an_unexpected_exception_in_a_call_is_a_tool_error_and_logged(
    stack: Stack,
) -> None:
    async def buggy(_args: dict[str, Any]) -> Result:
        raise RuntimeError("bug-8a1f")

    deep = '{"x": ' + "[" * 100_000 + "]" * 100_000 + "}"  # FakeTools' json.loads recurses
    stack.sim.script(
        QWEN,
        Reply(
            tool_calls=(
                call("buggy", "1"),
                ScriptedCall(name="add", arguments=deep, id="2"),
                call("add", "3", a=1, b=2),
            )
        ),
        Reply(content="survived"),
    )
    out = io.StringIO()
    configure_logging("debug", stream=out, json=True)
    try:
        roomy = AgentSettings(deadline_s=20.0, context_budget_chars=1_000_000)
        result = await run(stack, tools(buggy=buggy), settings=roomy)
    finally:
        configure_logging("warning", stream=io.StringIO(), json=True)  # as tests/conftest.py
    assert (result.answer, result.trace.stop_reason) == ("survived", "answer")
    assert [(c.name, c.ok) for c in result.trace.tool_calls] == [
        ("buggy", False),
        ("add", False),
        ("add", True),
    ]
    outputs = [m["content"] for m in bodies(stack.sim, CHAT)[1]["messages"] if m["role"] == "tool"]
    assert outputs[0] == TOOL_ERROR_PREFIX + (
        "the call failed unexpectedly (RuntimeError: bug-8a1f)"
    )
    assert outputs[1].startswith(TOOL_ERROR_PREFIX + "the call failed unexpectedly (RecursionError")
    assert outputs[2] == "3"
    events = list(map(json.loads, out.getvalue().splitlines()))
    crashed = [(e["tool"], e["error"]) for e in events if e["event"] == "agent_tool_call_crashed"]
    assert sorted(crashed) == [("add", "RecursionError"), ("buggy", "RuntimeError")]
    assert "bug-8a1f" not in out.getvalue()  # the message may quote arguments: not logged


async def test_parallel_calls_run_concurrently_and_answer_in_call_order(stack: Stack) -> None:
    # "first" can only finish once "second" has started: run one after the other, it would hang.
    second_started = trio.Event()

    async def first(_args: dict[str, Any]) -> Result:
        await second_started.wait()
        return Result("one")

    async def second(_args: dict[str, Any]) -> Result:
        second_started.set()
        return Result("two")

    stack.sim.script(
        QWEN,
        Reply(tool_calls=(call("first", "a"), call("second", "b"), call("add", "c", a=2, b=2))),
        Reply(content="done"),
    )
    result = await run(stack, tools(first=first, second=second))
    assert result.trace.stop_reason == "answer"
    assert [c.name for c in result.trace.tool_calls] == ["first", "second", "add"]
    messages = bodies(stack.sim, CHAT)[1]["messages"]
    assert [(m["tool_call_id"], m["content"]) for m in messages if m["role"] == "tool"] == [
        ("a", "one"),
        ("b", "two"),
        ("c", "4"),
    ]


async def test_missing_call_ids_are_filled_in_so_tool_messages_match(stack: Stack) -> None:
    # A server that sends tool calls without ids (the simulator always sends them).
    answer = {
        "choices": [
            {
                "index": 0,
                "finish_reason": "tool_calls",
                "message": {
                    "role": "assistant",
                    "tool_calls": [{"function": {"name": "once", "arguments": "{}"}}],
                },
            }
        ]
    }
    stack.sim.faults.route_raw[CHAT] = (200, "application/json", msgspec.json.encode(answer))

    async def once(_args: dict[str, Any]) -> Result:
        del stack.sim.faults.route_raw[CHAT]
        return Result("fine")

    stack.sim.script(QWEN, Reply(content="2"))
    result = await run(stack, tools(once=once))
    assert (result.answer, result.trace.rounds) == ("2", 2)
    messages = bodies(stack.sim, CHAT)[1]["messages"]
    assistant, tool = messages[-2], messages[-1]
    assert assistant["tool_calls"][0]["id"] == "call_1_0"
    assert tool == {"role": "tool", "tool_call_id": "call_1_0", "content": "fine"}


@pytest.mark.parametrize(
    ("finish", "stop"), [("length", "length"), ("content_filter", "content_filter")]
)
async def test_finish_reasons_without_tool_calls_end_the_run(
    stack: Stack, finish: str, stop: str
) -> None:
    stack.sim.script(QWEN, Reply(content="partial answ", finish_reason=finish))
    result = await run(stack, tools())
    assert (result.answer, result.trace.stop_reason, result.trace.finish_reason) == (
        "partial answ",
        stop,
        finish,
    )
    assert not result.trace.success


async def test_no_tools_needed_is_one_round(stack: Stack) -> None:
    stack.sim.script(QWEN, Reply(content="hello"))
    result = await run(stack, tools(), task="just say hello")
    assert (result.answer, result.trace.rounds, result.trace.tool_calls) == ("hello", 1, [])


# -- the Responses API --


async def test_responses_multi_round_chains_function_call_outputs(stack: Stack) -> None:
    stack.sim.script(
        QWEN,
        Reply(tool_calls=(call("add", "call_a", a=1, b=2), call("fail", "call_b"))),
        Reply(tool_calls=(call("add", "call_c", a=5, b=5),)),
        Reply(content="3 and 10", reasoning="thought"),
    )
    result = await run(stack, tools(), api="responses")
    assert (result.answer, result.reasoning) == ("3 and 10", "thought")
    trace = result.trace
    assert (trace.api, trace.stop_reason, trace.rounds, trace.finish_reason) == (
        "responses",
        "answer",
        3,
        "completed",
    )
    assert [(c.name, c.ok) for c in trace.tool_calls] == [
        ("add", True),
        ("fail", False),
        ("add", True),
    ]

    sent = bodies(stack.sim, RESPONSES)
    assert len(sent) == 3
    assert all("tool_choice" not in b for b in sent)
    assert sent[0]["input"] == "add 1 and 2"
    assert "previous_response_id" not in sent[0]
    assert [t["name"] for t in sent[0]["tools"]] == ["add", "fail"]
    ids = list(stack.sim.responses)
    assert sent[1]["previous_response_id"] == ids[0]
    assert sent[1]["input"] == [
        {"type": "function_call_output", "call_id": "call_a", "output": "3"},
        {
            "type": "function_call_output",
            "call_id": "call_b",
            "output": f"{TOOL_ERROR_PREFIX}disk on fire",
        },
    ]
    assert sent[2]["previous_response_id"] == ids[1]
    assert sent[2]["input"] == [
        {"type": "function_call_output", "call_id": "call_c", "output": "10"}
    ]
    assert all(b["instructions"] and b["tools"] for b in sent)  # resent each round


# -- bounds --


async def test_round_limit_stops_a_model_that_never_finishes(stack: Stack) -> None:
    stack.sim.script(QWEN, *(Reply(tool_calls=(call("add", str(i), a=i, b=0),)) for i in range(10)))
    box = tools()
    result = await run(stack, box, max_rounds=3)
    trace = result.trace
    assert (trace.stop_reason, trace.rounds) == ("max_rounds", 3)
    assert stack.sim.count(CHAT) == 3
    # The calls asked for in the last allowed round are not run.
    assert len(box.calls) == 2
    assert trace.errors == ["round limit (3) reached; not run: add"]


async def test_default_round_limit_comes_from_settings(stack: Stack) -> None:
    stack.sim.script(QWEN, *(Reply(tool_calls=(call("add", str(i), a=i, b=0),)) for i in range(5)))
    result = await run(stack, tools(), settings=AgentSettings(max_rounds=2, deadline_s=20))
    assert (result.trace.stop_reason, result.trace.rounds) == ("max_rounds", 2)


async def test_deadline_stops_a_hanging_tool_with_the_partial_trace(stack: Stack) -> None:
    async def hang(_args: dict[str, Any]) -> Result:
        await trio.sleep_forever()
        raise AssertionError("unreachable")

    stack.sim.script(
        QWEN,
        Reply(tool_calls=(call("add", "1", a=1, b=1),), content="step one"),
        Reply(tool_calls=(call("hang", "2"),)),
    )
    settings = AgentSettings(deadline_s=1.0)
    # Loaded first: the 1 s deadline is for the two rounds, not for a (fake) lms load,
    # which takes longer than that on a busy machine or under coverage.
    await stack.orch.ensure_loaded(QWEN)
    result = await run(stack, tools(hang=hang), settings=settings)
    trace = result.trace
    assert (trace.stop_reason, trace.rounds) == ("deadline", 2)
    assert [c.name for c in trace.tool_calls] == ["add"]  # the hung call never finished
    assert result.answer == "step one"
    assert trace.errors == ["deadline of 1s passed (LMSORCH_AGENT_DEADLINE_S)"]
    assert trace.elapsed_s >= 1.0
    # The lease was given back: nothing is in flight once the actor has read the release.
    await trio.testing.wait_all_tasks_blocked()
    assert [s.in_flight for s in stack.orch.status()] == [0]


async def test_deadline_also_bounds_a_model_that_never_answers(stack: Stack) -> None:
    gate = stack.sim.faults.hold_first_token(QWEN)
    result = await run(stack, tools(), settings=AgentSettings(deadline_s=0.5))
    gate.set()
    assert (result.trace.stop_reason, result.trace.rounds) == ("deadline", 0)


async def test_chat_drops_the_oldest_tool_outputs_to_fit_the_context_budget(
    stack: Stack,
) -> None:
    async def big(_args: dict[str, Any]) -> Result:
        return Result("x" * 400)

    stack.sim.script(
        QWEN,
        *(Reply(tool_calls=(call("big", f"c{i}"),)) for i in range(3)),
        Reply(content="done"),
    )
    # Task + instructions ~ 450 characters; room for about two big outputs.
    settings = AgentSettings(context_budget_chars=1400, deadline_s=20)
    result = await run(stack, tools(big=big), settings=settings)
    assert result.trace.stop_reason == "answer"
    assert result.trace.dropped_outputs == 1
    last = bodies(stack.sim, CHAT)[3]["messages"]
    outputs = [m["content"] for m in last if m["role"] == "tool"]
    assert outputs == [DROPPED_NOTE, "x" * 400, "x" * 400]


async def test_context_budget_stops_the_run_when_nothing_can_be_dropped(stack: Stack) -> None:
    async def big(_args: dict[str, Any]) -> Result:
        return Result("x" * 2000)

    for api in ("chat", "responses"):
        stack.sim.script(QWEN, Reply(tool_calls=(call("big", "1"),)))
        settings = AgentSettings(context_budget_chars=1500, deadline_s=20)
        result = await run(stack, tools(big=big), settings=settings, api=api)
        assert (result.trace.stop_reason, result.trace.rounds) == ("context_budget", 1), api
        assert "context budget of 1500" in result.trace.errors[-1]


# -- the model --


async def test_a_model_lost_mid_run_is_reloaded_and_the_round_retried(stack: Stack) -> None:
    async def evict(_args: dict[str, Any]) -> Result:
        stack.sim.evict(QWEN)  # LM Studio dropped the model behind our back
        return Result("evicted")

    stack.sim.script(QWEN, Reply(tool_calls=(call("evict", "1"),)), Reply(content="still here"))
    result = await run(stack, tools(evict=evict))
    assert (result.answer, result.trace.stop_reason, result.trace.rounds) == (
        "still here",
        "answer",
        2,
    )
    assert len(stack.sim.state.loads) == 2  # loaded, lost, reloaded
    outcomes = stack.orch.metrics.inference_requests
    assert outcomes.labels(model=QWEN, endpoint="chat", outcome="lost")._value.get() == 1
    assert outcomes.labels(model=QWEN, endpoint="chat", outcome="ok")._value.get() == 2


async def test_a_model_server_failure_mid_run_ends_it_with_the_trace(stack: Stack) -> None:
    async def break_server(_args: dict[str, Any]) -> Result:
        stack.sim.faults.route_status[CHAT] = 500
        return Result("ok")

    stack.sim.script(QWEN, Reply(tool_calls=(call("brk", "1"),)))
    result = await run(stack, tools(brk=break_server))
    trace = result.trace
    assert (trace.stop_reason, trace.rounds) == ("error", 1)
    assert trace.errors[0].startswith("round 2: ")
    await trio.testing.wait_all_tasks_blocked()
    assert [s.in_flight for s in stack.orch.status()] == [0]


async def test_an_unknown_model_is_raised_before_any_round(stack: Stack) -> None:
    with pytest.raises(UnknownModel):
        await run_agent(
            stack.orch, stack.client, tools(), "x", model="no/such-model", settings=SETTINGS
        )
    assert stack.sim.count(CHAT) == 0


@pytest.mark.parametrize(
    ("task", "kw", "message"),
    [
        ("", {}, "the task is empty"),
        ("  ", {}, "the task is empty"),
        ("x", {"max_rounds": 0}, "at least 1"),
        ("x", {"max_rounds": 101}, "above the cap of 100 (LMSORCH_AGENT_MAX_ROUNDS_CAP)"),
        ("x", {"api": "grpc"}, "api must be"),
        ("x" * 200_000, {}, "the context budget is 120000"),
    ],
)
async def test_bad_arguments_are_refused_before_the_model_is_touched(
    stack: Stack, task: str, kw: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidRequest, match=message.replace("(", r"\(").replace(")", r"\)")):
        await run(stack, tools(), task=task, **kw)
    assert stack.sim.requests() == [] or stack.sim.count(CHAT) == 0
    assert stack.orch.status() == []


# -- what a run reports --


async def test_progress_is_reported_each_round(stack: Stack) -> None:
    seen: list[tuple[int, int, str]] = []

    async def progress(round_: int, total: int, message: str) -> None:
        seen.append((round_, total, message))

    stack.sim.script(QWEN, Reply(tool_calls=(call("add", "1", a=1, b=1),)), Reply(content="2"))
    await run(stack, tools(), max_rounds=4, progress=progress)
    assert seen == [
        (0, 4, f"waiting for model {QWEN}"),
        (1, 4, "round 1: called add"),
        (2, 4, "round 2: answered (answer)"),
    ]


async def test_every_run_is_measured_and_the_trace_encodes(stack: Stack) -> None:
    stack.sim.script(QWEN, Reply(content="a"), Reply(content="b", finish_reason="length"))
    await run(stack, tools())
    result = await run(stack, tools())
    registry = stack.orch.metrics.registry
    labels = {"server": "fake"}
    ok = registry.get_sample_value(
        "lmsorch_agent_run_duration_seconds_count", {**labels, "success": "true"}
    )
    failed = registry.get_sample_value(
        "lmsorch_agent_run_duration_seconds_count", {**labels, "success": "false"}
    )
    assert (ok, failed) == (1.0, 1.0)
    decoded = msgspec.json.decode(msgspec.json.encode(result.trace), type=AgentTrace)
    assert decoded == result.trace


async def test_a_run_over_several_servers_is_measured_once_per_server(stack: Stack) -> None:
    stack.sim.script(QWEN, Reply(content="a"), Reply(content="b"))
    box = tools()
    box.servers = ("git", "fs")
    await run(stack, box)
    box.servers = ("git",)
    await run(stack, box)
    registry = stack.orch.metrics.registry

    def count(server: str) -> float | None:
        return registry.get_sample_value(
            "lmsorch_agent_run_duration_seconds_count", {"server": server, "success": "true"}
        )

    assert (count("git"), count("fs"), count("git,fs"), count("fs,git")) == (2.0, 1.0, None, None)


# -- the context budget, as a property --


@given(
    rounds=st.lists(st.lists(st.integers(0, 300), min_size=1, max_size=3), max_size=6),
    budget=st.integers(1, 3000),
)
def test_fit_drops_only_old_outputs_and_fits_when_it_says_so(
    rounds: list[list[int]], budget: int
) -> None:
    wire = ChatWire(
        cast(InferenceClient, None),  # fit() sends nothing
        task="t" * 50,
        instructions="i" * 50,
        tools=[],
        max_tokens=None,
        temperature=None,
    )
    for r, sizes in enumerate(rounds):
        calls = [Call(id=f"{r}-{i}", name="f", arguments="{}") for i in range(len(sizes))]
        wire.messages.append(ChatMessage(role="assistant", content="a"))
        wire.answer(calls, ["x" * n for n in sizes])
    before = list(wire.messages)
    fits, dropped = wire.fit(budget)

    assert fits == (wire.size() <= budget)
    changed = [i for i, (a, b) in enumerate(zip(before, wire.messages, strict=True)) if a != b]
    assert len(changed) == dropped
    latest = max((i for i, m in enumerate(before) if m.role == "assistant"), default=0)
    for i in changed:
        assert before[i].role == "tool"
        assert i < latest  # the latest round is never touched
        assert wire.messages[i].content == DROPPED_NOTE
        assert len(before[i].text) > len(DROPPED_NOTE)  # dropping always shrinks
    # Oldest first, and all the way when it still does not fit: nothing left that could go.
    end = latest if not fits else (changed[-1] if changed else 0)
    if end:
        for i in range(end):
            m = wire.messages[i]
            assert m.role != "tool" or len(m.text) <= len(DROPPED_NOTE)


async def test_each_run_logs_one_event_without_task_answer_or_tool_output(stack: Stack) -> None:
    async def secret(_args: dict[str, Any]) -> Result:
        return Result("tool-output-c4f1")

    stack.sim.script(
        QWEN,
        Reply(tool_calls=(call("secret", "1", token="argument-9d2e"),)),
        Reply(content="answer-77ab"),
    )
    out = io.StringIO()
    configure_logging("debug", stream=out, json=True)
    try:
        await run(stack, tools(secret=secret), task="task-text-5e0c")
    finally:
        configure_logging("warning", stream=io.StringIO(), json=True)  # as tests/conftest.py
    text = out.getvalue()
    for private in ("task-text-5e0c", "answer-77ab", "tool-output-c4f1", "argument-9d2e"):
        assert private not in text
    [event] = [e for e in map(json.loads, text.splitlines()) if e.get("event") == "agent_run"]
    assert {k: event[k] for k in ("model", "api", "servers", "rounds", "stop_reason")} == {
        "model": QWEN,
        "api": "chat",
        "servers": ["fake"],
        "rounds": 2,
        "stop_reason": "answer",
    }
    assert (event["tool_calls"], event["tool_errors"]) == (1, 0)
