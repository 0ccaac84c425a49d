"""The real wire: stdio to a server subprocess, and streamable HTTP on loopback (hypercorn)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path

import httpx
import httpx2
import pytest
import trio
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client

from orchestrator import Config
from orchestrator.backends.provision import fetch_demo_model
from tests.fakes import Reply, Simulator, open_simulator
from tests.mcp_frontend.mcp_support import DEMO, QWEN, error, ok, server_env

TOKEN = "s3cret-token"


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with open_simulator(jit=False) as s:
        yield s


async def test_stdio_carries_json_rpc_only(tmp_path: Path) -> None:
    """Speak raw JSON-RPC to ``python -m mcp_frontend`` and check every stdout line."""
    messages = [
        {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {},
            "clientInfo": {"name": "raw", "version": "0"}}},
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
        {"jsonrpc": "2.0", "id": 3, "method": "tools/call",
         "params": {"name": "load_model", "arguments": {"model": "nope"}}},
    ]  # fmt: skip
    env = server_env(tmp_path, LMSORCH_LLAMACPP_MODELS_DIR=str(tmp_path), LMSORCH_LOG_LEVEL="debug")
    stdout, stderr = bytearray(), bytearray()
    answered = trio.Event()

    async def drain(stream: trio.abc.ReceiveStream, into: bytearray) -> None:
        async for chunk in stream:
            into.extend(chunk)
            complete = into.decode().split("\n")[:-1]  # the last piece may be partial
            if stream is proc.stdout and {json.loads(line).get("id") for line in complete} >= {
                1,
                2,
                3,
            }:
                answered.set()

    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            proc: trio.Process = await nursery.start(
                partial(
                    trio.run_process,
                    [sys.executable, "-m", "mcp_frontend", "--backend", "llamacpp"],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    env=env,
                    check=False,
                )
            )
            assert proc.stdin is not None
            assert proc.stdout is not None
            assert proc.stderr is not None
            nursery.start_soon(drain, proc.stdout, stdout)
            nursery.start_soon(drain, proc.stderr, stderr)
            for message in messages:
                await proc.stdin.send_all(json.dumps(message).encode() + b"\n")
            # EOF on stdin stops the server: send it only once every reply is out.
            await answered.wait()
            await proc.stdin.aclose()

    lines = stdout.decode().splitlines()
    replies = {m["id"]: m for m in map(json.loads, lines)}  # every line parses as JSON
    assert all(json.loads(line)["jsonrpc"] == "2.0" for line in lines)
    assert {t["name"] for t in replies[2]["result"]["tools"]} >= {"list_models", "chat_completion"}
    assert replies[3]["result"]["isError"] is True
    assert (
        "unknown model 'nope'; available models: none" in replies[3]["result"]["content"][0]["text"]
    )
    assert b'"logger": "mcp.server' in stderr  # the logs went to stderr
    assert proc.returncode == 0


@pytest.fixture(scope="module")
def demo_models_dir() -> Path:
    models_dir = Config.load().llamacpp.resolved_models_dir()
    fetch_demo_model(models_dir)
    return models_dir


async def test_lmsorch_serve_over_stdio_runs_the_real_model(
    tmp_path: Path, demo_models_dir: Path
) -> None:
    env = server_env(
        tmp_path, LMSORCH_LLAMACPP_MODELS_DIR=str(demo_models_dir), LMSORCH_DEFAULT_MODEL=DEMO
    )
    lmsorch = str(Path(sys.executable).parent / "lmsorch")
    params = StdioServerParameters(
        command=lmsorch, args=["serve", "--backend", "llamacpp"], env=env
    )
    seen: list[str] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append(message or "")

    with trio.fail_after(120):
        async with Client(params, mode="legacy") as client:
            listed = ok(await client.call_tool("list_models", {}))
            answer = ok(
                await client.call_tool(
                    "chat_completion",
                    {"prompt": "Say hello.", "max_tokens": 8, "temperature": 0},
                    progress_callback=on_progress,
                )
            )
            status = ok(await client.call_tool("model_status", {"model": DEMO}))

    assert [m["key"] for m in listed["models"]] == [DEMO]
    assert answer["model"] == DEMO
    assert answer["content"]
    assert answer["usage"]["completion_tokens"] > 0
    assert seen[0] == f"{DEMO}: LOADING"
    assert seen[-1] == f"{DEMO}: READY"
    assert status["models"][0]["state"] == "READY"


async def test_python_m_mcp_frontend_serves_lm_studio_over_stdio(
    tmp_path: Path, sim: Simulator, lms: str
) -> None:
    sim.script(QWEN, Reply(content="from the simulator"))
    env = server_env(
        tmp_path,
        LMSTUDIO_BASE_URL=sim.base_url,
        LMS_CLI=lms,
        LMSORCH_DEFAULT_MODEL=QWEN,
        PATH=os.environ["PATH"],
    )
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "mcp_frontend", "--backend", "lmstudio"], env=env
    )

    with trio.fail_after(60):
        async with Client(params) as client:
            answer = ok(await client.call_tool("chat_completion", {"prompt": "hi"}))
            unknown = error(
                await client.call_tool("chat_completion", {"prompt": "hi", "model": "x/y"})
            )

    assert answer["content"] == "from the simulator"
    assert [(r.argv[0], r.argv[1]) for r in sim.cli_runs("load")] == [("load", QWEN)]
    assert "unknown model 'x/y'" in unknown
    assert QWEN in unknown
    # The server unloaded what it loaded when its stdin closed.
    assert sim.loaded() == []


# -- streamable HTTP --


async def test_streamable_http_serves_the_tools_on_loopback(http_url: str) -> None:
    assert http_url.startswith("http://127.0.0.1:")
    with trio.fail_after(10):
        async with Client(http_url) as client:
            tools = {t.name for t in (await client.list_tools()).tools}
            loaded = ok(await client.call_tool("load_model", {"model": "model-a"}))

    assert "analyze_image" in tools
    assert loaded["status"]["state"] == "READY"


@pytest.mark.parametrize("http_url", [TOKEN], indirect=True)
async def test_streamable_http_with_a_token_refuses_requests_without_it(http_url: str) -> None:
    hello = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    async with httpx.AsyncClient(trust_env=False) as raw:
        bare = await raw.post(http_url, json=hello)
        wrong = await raw.post(http_url, json=hello, headers={"Authorization": "Bearer nope"})
    assert (bare.status_code, wrong.status_code) == (401, 401)
    assert bare.headers["www-authenticate"].startswith("Bearer")

    authorized = httpx2.AsyncClient(headers={"Authorization": f"Bearer {TOKEN}"})
    with trio.fail_after(10):
        async with (
            authorized,
            Client(streamable_http_client(http_url, http_client=authorized)) as c,
        ):
            assert ok(await c.call_tool("model_status", {}))["models"] == []
