"""Case 8, start-up: process start to the first ``tools/list`` answer over stdio.

Side by side, alternated so that machine noise hits both alike: a bare ``mcp``
SDK server (one tool, ``MCPServer.run_stdio_async`` on trio, the least any
Python MCP server over this SDK can import) and ``python -m mcp_frontend
--backend llamacpp`` over an empty model directory. Each start is timed from
spawning the interpreter to reading the ``tools/list`` reply; the client sends
``initialize``, ``notifications/initialized`` and ``tools/list`` at once. The
figure to watch is the ratio of the medians (target 1.25: the SDK's own import
is most of both).

Wall time on a shared machine depends on what else runs; so each start also
reads the CPU time the server process has used when its answer arrives (the sum
of its threads' ``/proc/PID/task/TID/schedstat``), and the ratio of those
medians is given beside the judged one: it hardly moves with the machine's load.

Both run from bytecode, as installed: pip compiles a wheel's modules when it
installs them (the SDK's among them), but an editable install leaves ours to be
compiled on first import, and with ``PYTHONDONTWRITEBYTECODE`` set (as on this
workplace's machines) at every start: about 65 ms for our 125 modules, which
says nothing about a user's start. So the case compiles our packages first.

Each repetition has a fresh home, so its first start of ours derives the tool
schemas and writes them to the cache (``mcp_frontend/tools/schema_cache.py``),
as a user's first start after an install or upgrade does; that start is timed
on its own (``lmsorch_first_s``) and the alternated starts that follow read
the cache, as every later start of a user's does.
"""

from __future__ import annotations

import compileall
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import trio

from benchmarks.core import Case, Metric, at_most

BARE_SERVER = """\
import anyio
from mcp.server.mcpserver import MCPServer

app = MCPServer("bare")


@app.tool()
async def ping(x: int) -> int:
    \"\"\"Answer x.\"\"\"
    return x


anyio.run(app.run_stdio_async, backend="trio")
"""

_HELLO = [
    {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {},
        "clientInfo": {"name": "bench", "version": "0"}}},
    {"jsonrpc": "2.0", "method": "notifications/initialized"},
    {"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
]  # fmt: skip
_ROOT = Path(__file__).resolve().parents[1]
_REQUEST = "".join(json.dumps(m) + "\n" for m in _HELLO).encode()


def _cpu_s(pid: int) -> float:
    """CPU seconds used so far by the threads of ``pid`` (Linux schedstat, nanoseconds)."""
    total = 0
    for stat in Path(f"/proc/{pid}/task").glob("*/schedstat"):
        try:
            total += int(stat.read_text().split()[0])
        except (OSError, IndexError, ValueError):
            continue  # a thread that ended while we looked
    return total / 1e9


async def _first_tools_list_s(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU seconds from spawning ``argv`` to its ``tools/list`` answer; then close."""
    started = time.perf_counter()
    proc = await trio.lowlevel.open_process(
        argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env
    )
    assert proc.stdin is not None
    assert proc.stdout is not None
    try:
        await proc.stdin.send_all(_REQUEST)
        seen = b""
        with trio.fail_after(60):
            while b'"id":2' not in seen.replace(b" ", b""):
                chunk = await proc.stdout.receive_some()
                if not chunk:
                    raise RuntimeError(f"{argv[1]} exited before answering tools/list")
                seen += chunk
        elapsed = time.perf_counter() - started
        cpu = _cpu_s(proc.pid)
        await proc.stdin.aclose()
        with trio.fail_after(30):
            await proc.wait()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    return elapsed, cpu


async def run(quick: bool) -> dict[str, float]:
    """One repetition: 1 (quick) or 5 alternated starts of each server."""
    starts = 1 if quick else 5
    for package in ("orchestrator", "mcp_frontend"):  # what pip does when it installs a wheel
        compileall.compile_dir(_ROOT / package, quiet=2)
    with tempfile.TemporaryDirectory(prefix="lmsorch-bench-") as tmp:
        bare = Path(tmp) / "bare_server.py"
        bare.write_text(BARE_SERVER)
        models = Path(tmp) / "models"
        models.mkdir()
        env = {k: v for k, v in os.environ.items() if not k.startswith("LMSORCH_")}
        env |= {"LMSORCH_LLAMACPP_MODELS_DIR": str(models), "HOME": tmp}
        ours_argv = [sys.executable, "-m", "mcp_frontend", "--backend", "llamacpp"]
        first, _ = await _first_tools_list_s(ours_argv, env)  # writes the schema cache
        bare_s, ours_s = [], []
        for _ in range(starts):
            bare_s.append(await _first_tools_list_s([sys.executable, str(bare)], env))
            ours_s.append(await _first_tools_list_s(ours_argv, env))
    bare_med, ours_med = (statistics.median(w for w, _ in s) for s in (bare_s, ours_s))
    bare_cpu, ours_cpu = (statistics.median(c for _, c in s) for s in (bare_s, ours_s))
    return {
        "bare_s": bare_med,
        "lmsorch_s": ours_med,
        "lmsorch_first_s": first,
        "ratio": ours_med / bare_med,
        "bare_cpu_s": bare_cpu,
        "lmsorch_cpu_s": ours_cpu,
        "cpu_ratio": ours_cpu / bare_cpu,
    }


CASE = Case(
    name="startup",
    title="start to first tools/list over stdio: lmsorch vs a bare mcp SDK server",
    metrics=(
        Metric("bare_s", "bare SDK server, start to tools/list", "s"),
        Metric("lmsorch_s", "lmsorch serve, start to tools/list", "s"),
        Metric("lmsorch_first_s", "lmsorch serve, first start (derives the schema cache)", "s"),
        Metric("ratio", "lmsorch / bare", "x", at_most(1.25)),
        Metric("bare_cpu_s", "bare SDK server, CPU time until its tools/list answer", "s"),
        Metric("lmsorch_cpu_s", "lmsorch serve, CPU time until its tools/list answer", "s"),
        Metric("cpu_ratio", "lmsorch / bare, CPU time", "x"),
    ),
    run=run,
    runs=(3, 1),
    notes="Median of 5 alternated starts of each per repetition (1 in --quick), after one "
    "first start of lmsorch that writes its schema cache.",
)
