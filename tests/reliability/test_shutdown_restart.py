"""Stopping the real ``lmsorch serve`` mid-load and mid-agent-run, and starting it again.

The server runs as a process over stdio against the LM Studio simulator and
the fake ``lms`` (so loads are real child processes). A stop, graceful
(SIGTERM) or not (SIGKILL), must leave no child process of ours and nothing
loaded without a TTL; a restart adopts what LM Studio still holds instead of
loading it twice.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest
import trio

from tests.agents.agent_support import gone, toy_entry, write_mcp_json
from tests.fakes import Reply, ScriptedCall, Simulator

from .probes import pid_alive
from .server_process import ServerProcess, lmsorch_serve, simulator_server_env
from .stack import QWEN

CHAT = "/v1/chat/completions"


@pytest.fixture
def env(sim: Simulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, str]:
    mcp_json = write_mcp_json(tmp_path / "mcp.json", {"toy": toy_entry()})
    return simulator_server_env(
        sim,
        monkeypatch,
        tmp_path,
        QWEN,
        LMSORCH_AGENT_MCP_CONFIG=str(mcp_json),
        LMSORCH_AGENT_ROOTS=str(tmp_path),
    )


def assert_everything_loaded_has_a_ttl(sim: Simulator) -> None:
    assert all(i.ttl_s is not None and i.ttl_s > 0 for i in sim.state.instances.values()), (
        sim.state.instances
    )


async def stop(server: ServerProcess, sig: signal.Signals) -> None:
    server.proc.send_signal(sig)
    await server.proc.wait()


@pytest.mark.parametrize("how", ["SIGTERM", "SIGINT", "stdin EOF"])
async def test_stop_mid_load_leaves_no_lms_and_nothing_untimed(
    sim: Simulator, env: dict[str, str], tmp_path: Path, how: str
) -> None:
    gate = sim.faults.hold_load(QWEN)
    with trio.fail_after(60):
        async with lmsorch_serve(env, tmp_path / "server.log") as server:
            await server.call_tool("load_model", {"model": QWEN})
            await sim.wait_for(lambda: bool(sim.cli_runs("load")))
            if how.startswith("SIG"):
                await stop(server, signal.Signals[how])
            else:
                assert server.proc.stdin is not None
                await server.proc.stdin.aclose()  # the client went away
                await server.proc.wait()
        assert server.proc.returncode == 0
        (run,) = sim.cli_runs("load")
        assert not pid_alive(run.pid)  # the server killed and reaped its lms
        # LM Studio finishes a load whose lms merely went away (findings F8): let it
        # run to its end, then look. Only the SIGINT the server sends its lms cancels it.
        gate.set()
        await sim.wait_for(lambda: sim.loads_in_flight == 0)
    assert sim.cli_cancelled == [run.pid]
    assert sim.state.loads == []
    assert sim.loaded() == []
    assert sim.state.unloads == []  # nothing was loaded, so nothing needed unloading


async def test_sigterm_mid_agent_run_stops_the_tool_server_and_unloads(
    sim: Simulator, env: dict[str, str], tmp_path: Path
) -> None:
    sim.script(
        QWEN,
        Reply(tool_calls=(ScriptedCall(name="pid", arguments={}, id="1"),)),
        Reply(tool_calls=(ScriptedCall(name="slow", arguments={}, id="2"),)),  # never returns
    )
    with trio.fail_after(60):
        async with lmsorch_serve(env, tmp_path / "server.log") as server:
            run = await server.call_tool("autonomous_with_mcp", {"mcp_name": "toy", "task": "x"})
            # The second model request carries the toy server's pid (the first tool result).
            await sim.wait_for(lambda: sim.count(CHAT) == 2)
            toy_pid = int(sim.requests(CHAT)[1].body["messages"][-1]["content"])
            assert pid_alive(toy_pid)
            await stop(server, signal.SIGTERM)
        assert server.proc.returncode == 0
        assert run not in server.replies or "error" in json.dumps(server.replies[run])
        await gone(toy_pid)  # the agent's MCP server went with it
    assert not any(pid_alive(c.pid) for c in sim.cli_calls)
    assert sim.loaded() == []  # what the server loaded, it unloaded on the way out
    assert sim.state.unloads == [QWEN]


async def test_sigkill_mid_load_then_restart_adopts_instead_of_loading_twice(
    sim: Simulator, env: dict[str, str], tmp_path: Path
) -> None:
    gate = sim.faults.hold_load(QWEN)
    with trio.fail_after(90):
        async with lmsorch_serve(env, tmp_path / "server.log") as server:
            await server.call_tool("load_model", {"model": QWEN})
            await sim.wait_for(lambda: bool(sim.cli_runs("load")))
            await stop(server, signal.SIGKILL)  # no clean-up at all
        # The orphaned lms finishes the load: with the TTL, so LM Studio frees it itself.
        gate.set()
        (orphan,) = sim.cli_runs("load")
        await gone(orphan.pid)
        assert sim.loaded() == [QWEN]
        assert_everything_loaded_has_a_ttl(sim)

        async with lmsorch_serve(env, tmp_path / "server.log") as server:
            loaded = await server.reply(await server.call_tool("load_model", {"model": QWEN}))
            status = await server.reply(await server.call_tool("model_status", {}))
            await stop(server, signal.SIGTERM)
    assert loaded["result"]["isError"] is False, loaded
    assert loaded["result"]["structuredContent"]["status"]["state"] == "READY"
    (model,) = status["result"]["structuredContent"]["models"]
    assert (model["model"], model["state"]) == (QWEN, "READY")
    assert len(sim.cli_runs("load")) == 1  # adopted, not loaded twice
    events = [
        json.loads(line)
        for line in (tmp_path / "server.log").read_text().splitlines()
        if line.startswith("{")
    ]
    # Adoption at start runs beside the first requests (it never holds the handshake):
    # either it discovered the model first, or the load found it loaded and adopted it.
    discovered = any(
        e["event"] == "transition" and (e["src"], e["input"]) == ("UNLOADED", "DISCOVERED")
        for e in events
    )
    adopted_by_load = any(e["event"] == "load" and e["result"] == "adopted" for e in events)
    assert discovered or adopted_by_load
    assert [r.identifier for r in sim.state.loads] == [QWEN]
    # Not ours to unload (we did not load it): it stays, and it has its TTL.
    assert sim.loaded() == [QWEN]
    assert_everything_loaded_has_a_ttl(sim)


async def test_a_client_that_closes_stdout_stops_the_server_in_one_line_and_unloads(
    sim: Simulator, env: dict[str, str], tmp_path: Path
) -> None:
    log = tmp_path / "server.log"
    with trio.fail_after(60):
        async with lmsorch_serve(env, log) as server:
            await server.reply(await server.call_tool("load_model", {"model": QWEN}))
            assert server.proc.stdout is not None
            await server.proc.stdout.aclose()
            await server.call_tool("model_status", {})  # its answer cannot be written
            await server.proc.wait()
    assert server.proc.returncode == 1
    text = log.read_text()
    assert "lmsorch serve: error: stdout was closed by the MCP client" in text
    assert "Traceback" not in text
    assert sim.loaded() == []  # the usual clean-up ran
