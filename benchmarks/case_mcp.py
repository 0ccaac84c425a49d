"""Case 5, MCP overhead: ``chat_completion`` through the MCP server vs a direct HTTP call.

The LM Studio simulator (``tests/fakes``) answers at once; the model is
loaded before timing starts. Per round, one direct ``httpx`` POST to the
simulator's ``/v1/chat/completions`` and one ``chat_completion`` tool call
through the MCP server, both for the same model and prompt, alternated so
that machine noise hits both alike. Two transports, each against its own
simulator: the in-memory MCP client (server in this process) and real stdio
(``python -m mcp_frontend`` as a subprocess, JSON-RPC over pipes). The figure
is the added p50 (MCP p50 minus direct p50) and the ratio of the p50s. A
``model_status`` call (no inference, no lease) in each round shows the bare
cost of one tool call on that transport.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager

import httpx
from mcp import Client, StdioServerParameters

from benchmarks.core import Case, Metric, at_most, percentile
from benchmarks.support import REPO, fake_lms
from mcp_frontend.server import build_server
from mcp_frontend.settings import FrontendSettings
from orchestrator import Config, open_orchestrator
from orchestrator.inference import InferenceClient
from tests.fakes import Simulator, open_simulator
from tests.fakes.fixtures import make_backend

MODEL = "qwen/qwen3-4b"
PROMPT = "Say hello."

Call = Callable[[], Awaitable[None]]


def _direct(http: httpx.AsyncClient, base_url: str) -> Call:
    body = {"model": MODEL, "messages": [{"role": "user", "content": PROMPT}]}

    async def call() -> None:
        reply = await http.post(f"{base_url}/v1/chat/completions", json=body)
        reply.raise_for_status()
        reply.json()

    return call


def _tool(client: Client, name: str, arguments: dict[str, str]) -> Call:
    async def call() -> None:
        result = await client.call_tool(name, arguments)
        if result.is_error:
            raise RuntimeError(f"{name} failed: {result.content}")

    return call


@asynccontextmanager
async def _in_memory(sim: Simulator, lms: str) -> AsyncIterator[Client]:
    backend = make_backend(sim, lms_cli=lms)
    try:
        async with (
            InferenceClient(timeout_s=30) as inference,
            open_orchestrator(backend, Config()) as orch,
            Client(
                build_server(orch, settings=FrontendSettings(), inference_client=inference)
            ) as client,
        ):
            yield client
    finally:
        await backend.aclose()


def _stdio(base_url: str, lms: str) -> Client:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LMSORCH_", "LMSTUDIO_"))}
    env |= {
        "LMSTUDIO_BASE_URL": base_url,
        "LMS_CLI": lms,
        "LMSORCH_DEFAULT_MODEL": MODEL,
        "LMSORCH_LOG_LEVEL": "error",
    }
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "mcp_frontend", "--backend", "lmstudio"],
        env=env,
        cwd=str(REPO),
    )
    return Client(params)


async def _paired(
    direct: Call, tool: Call, status: Call, rounds: int
) -> tuple[list[float], list[float], list[float]]:
    await tool()  # loads the model (the simulator's JIT is off) and warms both paths
    await direct()
    await status()
    d: list[float] = []
    t: list[float] = []
    s: list[float] = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        await direct()
        t1 = time.perf_counter()
        await tool()
        t2 = time.perf_counter()
        await status()
        t3 = time.perf_counter()
        d.append((t1 - t0) * 1e3)
        t.append((t2 - t1) * 1e3)
        s.append((t3 - t2) * 1e3)
    return sorted(d), sorted(t), sorted(s)


async def run(quick: bool) -> dict[str, float]:
    rounds = 20 if quick else 300
    result: dict[str, float] = {}
    with fake_lms() as lms:
        async with httpx.AsyncClient(trust_env=False) as http:
            for transport in ("memory", "stdio"):
                async with open_simulator(jit=False) as sim, AsyncExitStack() as stack:
                    if transport == "memory":
                        client = await stack.enter_async_context(_in_memory(sim, lms))
                    else:
                        client = await stack.enter_async_context(_stdio(sim.base_url, lms))
                    direct, tool, status = await _paired(
                        _direct(http, sim.base_url),
                        _tool(client, "chat_completion", {"prompt": PROMPT, "model": MODEL}),
                        _tool(client, "model_status", {"model": MODEL}),
                        rounds,
                    )
                p50_d, p50_t = percentile(direct, 50), percentile(tool, 50)
                result[f"{transport}_direct_p50_ms"] = p50_d
                result[f"{transport}_mcp_p50_ms"] = p50_t
                result[f"{transport}_mcp_p99_ms"] = percentile(tool, 99)
                result[f"{transport}_added_p50_ms"] = p50_t - p50_d
                result[f"{transport}_ratio"] = p50_t / p50_d
                result[f"{transport}_status_p50_ms"] = percentile(status, 50)
    return result


def _metrics() -> tuple[Metric, ...]:
    out = []
    for transport, limit in (("memory", 2.0), ("stdio", 5.0)):
        what = "in-memory" if transport == "memory" else "stdio"
        out += [
            Metric(f"{transport}_direct_p50_ms", f"direct httpx p50 ({what} round)", "ms"),
            Metric(f"{transport}_mcp_p50_ms", f"MCP chat_completion p50 ({what})", "ms"),
            Metric(f"{transport}_mcp_p99_ms", f"MCP chat_completion p99 ({what})", "ms"),
            Metric(f"{transport}_added_p50_ms", f"added p50 ({what})", "ms", at_most(limit)),
            Metric(f"{transport}_ratio", f"MCP p50 / direct p50 ({what})", "x"),
            Metric(f"{transport}_status_p50_ms", f"model_status p50, no inference ({what})", "ms"),
        ]
    return tuple(out)


CASE = Case(
    name="mcp",
    title="chat_completion through MCP (in-memory, stdio) vs direct httpx, simulator",
    metrics=_metrics(),
    run=run,
    runs=(3, 1),
)
