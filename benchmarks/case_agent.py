"""Case 9, agent: whole autonomous runs, latency percentiles and runs per second.

One run is one ``autonomous_with_mcp`` call through the MCP server (in-memory
client, server in this process) as a user makes it: the toolbox starts the toy
MCP server (``tests/agents/servers/toy_server.py``, a real child process over
stdio), the model (the LM Studio simulator, its answers scripted) calls ``add``,
then ``echo``, then answers; the toolbox closes the child. Three model rounds,
two tool calls, one child server start and stop per run. Runs go one after the
other; runs per second is their count over the wall time of all of them
(target: the plan's "> 0.5 req/s"). P95 and P99 are nearest-rank over the runs of
one repetition, so with fewer than 100 runs P99 is the slowest run.

Most of a run is the child server's start (a Python interpreter importing the
MCP SDK), which is the child's, not ours: after each run, the same server is
started bare with the SDK's stdio client (initialize, ``tools/list``, close),
and the run's p50 is also given minus that bare session's p50.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import msgspec
from mcp import Client, StdioServerParameters

from benchmarks.core import Case, Metric, at_least, percentile
from benchmarks.support import fake_lms
from mcp_frontend.server import build_server
from mcp_frontend.settings import FrontendSettings
from orchestrator import Config, open_orchestrator
from orchestrator.agent import AgentSettings
from orchestrator.inference import InferenceClient
from tests.agents.agent_support import toy_entry, write_mcp_json
from tests.fakes import Reply, ScriptedCall, Simulator, open_simulator
from tests.fakes.fixtures import make_backend

MODEL = "qwen/qwen3-4b"
TASK = {"mcp_name": "toy", "task": "add 20 and 22, then say the result", "model": MODEL}


def _script(sim: Simulator) -> None:
    sim.script(
        MODEL,
        Reply(tool_calls=(ScriptedCall(name="add", arguments={"a": 20, "b": 22}, id="1"),)),
        Reply(tool_calls=(ScriptedCall(name="echo", arguments={"text": "42"}, id="2"),)),
        Reply(content="42"),
    )


async def _one_run(client: Client, sim: Simulator) -> float:
    """Seconds for one whole run; raises unless it answered after 3 rounds, 2 tools ok."""
    _script(sim)
    started = time.perf_counter()
    result = await client.call_tool("autonomous_with_mcp", TASK)
    elapsed = time.perf_counter() - started
    out: Any = result.structured_content
    if result.is_error or out is None:
        raise RuntimeError(f"autonomous_with_mcp failed: {result.content}")
    trace = out["trace"]
    calls = [(c["name"], c["ok"]) for c in trace["tool_calls"]]
    if (out["answer"], trace["rounds"], calls) != ("42", 3, [("add", True), ("echo", True)]):
        raise RuntimeError(f"unexpected run: {out}")
    return elapsed


async def _bare_session() -> float:
    """Seconds to start the toy server with the SDK's client, list its tools and stop it."""
    entry = toy_entry()
    started = time.perf_counter()
    async with Client(StdioServerParameters(command=entry["command"], args=entry["args"])) as c:
        await c.list_tools()
    return time.perf_counter() - started


async def run(quick: bool) -> dict[str, float]:
    runs = 2 if quick else 40
    with fake_lms() as lms, tempfile.TemporaryDirectory(prefix="lmsorch-bench-") as tmp:
        agent_settings = AgentSettings(
            mcp_config=str(write_mcp_json(Path(tmp) / "mcp.json")),
            roots=(tmp,),
            start_timeout_s=20.0,
        )
        config = msgspec.structs.replace(Config(), default_model=MODEL)
        async with open_simulator(jit=False) as sim, InferenceClient(timeout_s=30) as inference:
            backend = make_backend(sim, lms_cli=lms)
            try:
                async with open_orchestrator(backend, config) as orch:
                    server = build_server(
                        orch,
                        settings=FrontendSettings(),
                        inference_client=inference,
                        agent_settings=agent_settings,
                    )
                    async with Client(server) as client:
                        await _one_run(client, sim)  # loads the model, imports the agent layer
                        seconds: list[float] = []
                        bare: list[float] = []
                        wall_s = 0.0
                        for _ in range(runs):
                            started = time.perf_counter()
                            seconds.append(await _one_run(client, sim))
                            wall_s += time.perf_counter() - started
                            bare.append(await _bare_session())
            finally:
                await backend.aclose()
    seconds.sort()
    bare.sort()
    return {
        "p50_s": percentile(seconds, 50),
        "p95_s": percentile(seconds, 95),
        "p99_s": percentile(seconds, 99),
        "runs_per_s": runs / wall_s,
        "bare_session_p50_s": percentile(bare, 50),
        "beyond_bare_p50_s": percentile(seconds, 50) - percentile(bare, 50),
    }


CASE = Case(
    name="agent",
    title="autonomous_with_mcp: whole runs (toy MCP server child, scripted simulator model)",
    metrics=(
        Metric("p50_s", "whole run p50", "s"),
        Metric("p95_s", "whole run p95", "s"),
        Metric("p99_s", "whole run p99 (the slowest run below 100 runs)", "s"),
        Metric("runs_per_s", "runs per second, one after another", "1/s", at_least(0.5)),
        Metric("bare_session_p50_s", "the toy server alone: start, tools/list, stop, p50", "s"),
        Metric("beyond_bare_p50_s", "whole run p50 minus the bare session p50", "s"),
    ),
    run=run,
    runs=(3, 1),
    notes="40 sequential runs per repetition (2 in --quick), after one unmeasured run; "
    "a bare session of the toy server after each run.",
)
