"""Stopping the real ``lmsorch serve`` with 6 calls in flight: 6 answers, nothing left loaded.

Issue 16 saw 0 of 6 pending calls answered on SIGTERM or SIGINT (stdio and
HTTP), and a load in flight at the stop loaded in LM Studio after the exit.
Here each stop (SIGTERM, SIGINT, stdin EOF over stdio; the signals over HTTP)
must answer every call with the "server is stopping" JSON-RPC error, exit
within ``shutdown_timeout_s``, and leave nothing loaded on the simulator
(its truth, once every load it was running has finished).
"""

from __future__ import annotations

import signal
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import trio

from mcp_frontend.transports.drain import SERVER_STOPPING
from tests.fakes import Simulator, open_simulator
from tests.fakes.fixtures import remove_lms

from .server_process import (
    lmsorch_serve,
    lmsorch_serve_http,
    server_env,
    simulator_server_env,
)
from .stack import GEMMA, QWEN

CHAT = "/v1/chat/completions"
SHUTDOWN_S = 5.0
HELLO = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}


@pytest.fixture
def env(sim: Simulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, str]:
    return simulator_server_env(
        sim, monkeypatch, tmp_path, QWEN, LMSORCH_SHUTDOWN_TIMEOUT_S=str(SHUTDOWN_S)
    )


def assert_stopping_errors(replies: dict[int, dict[str, Any]], idents: list[int]) -> None:
    assert set(idents) <= set(replies), replies
    for ident in idents:
        error = replies[ident].get("error")
        assert error is not None, replies[ident]
        assert error["code"] == SERVER_STOPPING
        assert "the server is stopping" in error["message"]


async def six_calls_in_flight(
    sim: Simulator, call: Callable[[str, dict[str, Any]], Awaitable[None]]
) -> trio.Event:
    """5 chats held at their first token on a model we loaded, 1 load held in LM Studio.

    Returns the held load's gate. Returns once all 6 are at the simulator.
    """
    sim.faults.hold_first_token(GEMMA)
    gate = sim.faults.hold_load(QWEN)
    for _ in range(5):
        await call("chat_completion", HELLO | {"model": GEMMA})
    await call("load_model", {"model": QWEN})
    await sim.wait_for(lambda: sim.count(CHAT) == 5 and sim.loads_in_flight == 1)
    return gate


async def assert_nothing_left_loaded(sim: Simulator, gate: trio.Event) -> None:
    """Once every load the simulator was running has finished, nothing is loaded."""
    gate.set()
    await sim.wait_for(lambda: sim.loads_in_flight == 0)
    assert sim.loaded() == []


@pytest.mark.parametrize("how", ["SIGTERM", "SIGINT", "stdin EOF"])
async def test_a_stop_over_stdio_answers_six_calls_in_flight_and_unloads(
    sim: Simulator, env: dict[str, str], tmp_path: Path, how: str
) -> None:
    with trio.fail_after(60):
        async with lmsorch_serve(env, tmp_path / "server.log") as server:
            loaded = await server.reply(await server.call_tool("load_model", {"model": GEMMA}))
            assert loaded["result"]["isError"] is False, loaded
            idents: list[int] = []

            async def call(name: str, arguments: dict[str, Any]) -> None:
                idents.append(await server.call_tool(name, arguments))

            gate = await six_calls_in_flight(sim, call)
            stopped_at = trio.current_time()
            if how.startswith("SIG"):
                server.proc.send_signal(signal.Signals[how])
            else:
                assert server.proc.stdin is not None
                await server.proc.stdin.aclose()
            await server.proc.wait()
            exited_after = trio.current_time() - stopped_at
        assert server.proc.returncode == 0
        assert exited_after <= SHUTDOWN_S
        assert_stopping_errors(server.replies, idents)
        await assert_nothing_left_loaded(sim, gate)
    assert sim.state.unloads == [GEMMA]  # ours, unloaded; the load of QWEN was cancelled


@pytest.mark.parametrize("how", ["SIGTERM", "SIGINT"])
async def test_a_stop_over_http_answers_six_calls_in_flight_and_unloads(
    sim: Simulator, env: dict[str, str], tmp_path: Path, how: str
) -> None:
    with trio.fail_after(60):
        async with lmsorch_serve_http(env, tmp_path / "server.log") as server:
            await server.call_tool("load_model", {"model": GEMMA})
            async with trio.open_nursery() as calls:

                async def call(name: str, arguments: dict[str, Any]) -> None:
                    calls.start_soon(server.call_tool, name, arguments)

                gate = await six_calls_in_flight(sim, call)
                stopped_at = trio.current_time()
                server.proc.send_signal(signal.Signals[how])
            await server.proc.wait()
            exited_after = trio.current_time() - stopped_at
        assert server.proc.returncode == 0
        assert exited_after <= SHUTDOWN_S
        assert_stopping_errors(server.replies, [2, 3, 4, 5, 6, 7])
        await assert_nothing_left_loaded(sim, gate)
    assert sim.state.unloads == [GEMMA]


async def test_a_stop_unloads_a_jit_load_in_flight_once_lm_studio_completes_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # No lms: the load is a JIT request, which LM Studio completes even when we hang up.
    remove_lms(monkeypatch, tmp_path)
    async with open_simulator(jit=True) as sim:
        env = server_env(
            tmp_path,
            PATH=str(tmp_path / "empty-bin"),
            LMSTUDIO_BASE_URL=sim.base_url,
            LMSORCH_DEFAULT_MODEL=QWEN,
            LMSORCH_SHUTDOWN_TIMEOUT_S=str(SHUTDOWN_S),
        )
        gate = sim.faults.hold_load(QWEN)
        with trio.fail_after(60):
            async with lmsorch_serve(env, tmp_path / "server.log") as server:
                idents = [await server.call_tool("load_model", {"model": QWEN}) for _ in range(6)]
                await server.reply(await server.send("ping"))  # the 6 were read before it
                await sim.wait_for(lambda: sim.loads_in_flight == 1)
                stopped_at = trio.current_time()
                server.proc.send_signal(signal.SIGTERM)
                for ident in idents:
                    await server.reply(ident)
                # Answered; the server now waits for LM Studio to finish the load it dropped.
                assert server.proc.poll() is None
                gate.set()
                await server.proc.wait()
                exited_after = trio.current_time() - stopped_at
            assert server.proc.returncode == 0
            assert exited_after <= SHUTDOWN_S
            assert_stopping_errors(server.replies, idents)
            await sim.wait_for(lambda: sim.loads_in_flight == 0)
        assert [r.identifier for r in sim.state.loads] == [QWEN]  # it did complete
        assert sim.loaded() == []
        assert sim.state.unloads == [QWEN]  # and the stopping server unloaded it
