"""Smoke run: the real embedded model (SmolLM2-135M) drives the toy MCP server.

A 135M model is no agent; what matters is that the run ends cleanly whatever
it does (answers, calls tools badly, or the server refuses the request), with
a well-formed trace, and that no worker or MCP server process is left.
"""

from __future__ import annotations

from pathlib import Path
from typing import get_args

import trio

from orchestrator import Config, open_orchestrator
from orchestrator.agent.loop import run_agent
from orchestrator.agent.toolbox import open_toolbox
from orchestrator.agent.trace import AgentResult, Api, StopReason
from orchestrator.backends.llamacpp import LlamaCppBackend
from orchestrator.inference import InferenceClient
from tests.agents.agent_support import child_pids, toy_settings, toy_spec

MODEL = "smollm2-135m-instruct.q4_1"


def check(result: AgentResult, api: str) -> None:
    trace = result.trace
    assert trace.stop_reason in get_args(StopReason)
    assert 0 <= trace.rounds <= 3
    assert (trace.model, trace.api, trace.servers) == (MODEL, api, ("toy",))
    assert 0 < trace.elapsed_s <= 46
    assert all(1 <= c.round <= trace.rounds and c.duration_s >= 0 for c in trace.tool_calls)
    assert all(c.ok == (c.error is None) for c in trace.tool_calls)
    if trace.stop_reason == "error":
        assert trace.errors, "an error stop says what went wrong"
    else:
        assert trace.rounds >= 1


async def test_real_model_agent_runs_end_cleanly(backend: LlamaCppBackend, tmp_path: Path) -> None:
    settings = toy_settings(tmp_path, max_rounds=3, deadline_s=45.0, call_timeout_s=10.0)
    config = Config(verify_deadline_s=10.0, retry_initial_s=0.05, retry_jitter_s=0.0)
    apis: tuple[Api, ...] = ("chat", "responses")
    with trio.fail_after(120):
        async with (
            open_orchestrator(backend, config) as orch,
            InferenceClient(timeout_s=40) as client,
            open_toolbox([toy_spec()], settings) as tools,
        ):
            for api in apis:  # one model load for both wire modes
                result = await run_agent(
                    orch,
                    client,
                    tools,
                    "Add 2 and 3 with the add tool, then tell me the sum.",
                    model=MODEL,
                    settings=settings,
                    api=api,
                    max_tokens=48,
                    temperature=0.0,
                )
                check(result, api)
            registry = orch.metrics.registry
            runs = sum(
                registry.get_sample_value(
                    "lmsorch_agent_run_duration_seconds_count", {"server": "toy", "success": s}
                )
                or 0.0
                for s in ("true", "false")
            )
    assert runs == 2.0
    assert child_pids() == [], "a child process was left behind"
