"""``lmsorch serve`` imports only what its first ``tools/list`` needs (issue 20, start-up).

The start-up time itself is measured in ``benchmarks/case_startup.py`` (a ratio
to a bare SDK server, never asserted here). This checks the behaviour behind the
figure, in a real server process: the modules loaded by the time the process
exits after ``initialize`` and ``tools/list`` (read from its ``sys.modules``)
exclude the HTTP client stack and the agent loop, and a tool call that needs one
of them does load it (so the check can see a lazy import happen).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import trio

from tests.reliability.server_process import lmsorch_serve, server_env

LAZY = (
    "httpx",  # the SDK itself uses httpx2; ours loads with the first HTTP request
    "httpcore",
    "h2",
    "jsonschema",
    "hypercorn",
    "orchestrator.agent.loop",
    "orchestrator.agent.toolbox",
    "orchestrator.agent.sessions",
)
"""Modules the first ``tools/list`` over stdio does not need."""

# The real entry point (``lmsorch serve``), with the module list written at exit.
_SERVE = """\
import atexit, json, sys

def _dump(path=sys.argv[1]):
    with open(path, "w", encoding="utf-8") as out:
        json.dump(sorted(sys.modules), out)

atexit.register(_dump)
from mcp_frontend.cli import main
sys.exit(main(["serve", "--backend", "llamacpp"]))
"""


async def _modules_after(tmp_path: Path, *, tool: str | None) -> set[str]:
    """Serve, list the tools (then call ``tool`` if given), close stdin; the modules at exit."""
    dump = tmp_path / "modules.json"
    models = tmp_path / "models"
    models.mkdir()
    env = server_env(tmp_path, LMSORCH_LLAMACPP_MODELS_DIR=str(models))
    argv = [sys.executable, "-c", _SERVE, str(dump)]
    with trio.fail_after(60):
        async with lmsorch_serve(env, tmp_path / "stderr.log", argv) as server:
            listed = await server.reply(await server.send("tools/list"))
            assert len(listed["result"]["tools"]) > 10
            if tool is not None:
                answer = await server.reply(await server.call_tool(tool, {}))
                assert answer["result"]["isError"] is False, answer
            assert server.proc.stdin is not None
            await server.proc.stdin.aclose()
    assert server.proc.returncode == 0
    loaded: list[str] = json.loads(dump.read_text(encoding="utf-8"))
    return set(loaded)


async def test_tools_list_loads_no_http_client_and_no_agent_loop(tmp_path: Path) -> None:
    loaded = await _modules_after(tmp_path, tool=None)

    assert "mcp_frontend.server" in loaded  # the list is the server's
    assert sorted(m for m in LAZY if m in loaded) == []


async def test_a_tool_call_that_needs_the_agent_toolbox_loads_it(tmp_path: Path) -> None:
    # list_available_mcps probes each configured server through the toolbox (none here).
    loaded = await _modules_after(tmp_path, tool="list_available_mcps")

    assert "orchestrator.agent.toolbox" in loaded
