"""The plan's failure scenarios, one named test each, on the real backend over the simulator.

Each drives the product (orchestrator, LM Studio backend, fake ``lms``, and
the MCP tools where the scenario is about a tool call) and checks what the
caller gets, what LM Studio was asked to do, and what is left behind.
``docs/reliability.md`` maps each one to its row of the fault matrix.
"""

from __future__ import annotations

import tracemalloc
from collections import Counter
from pathlib import Path

import pytest
import trio
import trio.testing
from mcp.types import CallToolResult

from orchestrator import (
    BackendProtocolError,
    BackendRejected,
    BackendTimeout,
    InferenceTarget,
    ModelNotLoaded,
    ModelStatus,
    OrchestratorError,
    State,
    VerifyFailed,
)
from orchestrator.agent import AgentSettings
from tests.agents.agent_support import child_pids as agent_child_pids
from tests.agents.agent_support import gone, toy_entry, write_mcp_json
from tests.fakes import GUARDRAIL_MESSAGE, Reply, Simulator, open_simulator
from tests.fakes.fixtures import remove_lms

from .probes import (
    child_pids,
    counting_unraisable,
    open_fds,
    pid_alive,
    task_names,
    traced_bytes,
)
from .stack import GEMMA, GPT, QWEN, chat_request, open_stack, tool_text

EMBED = "text-embedding-nomic-embed-text-v1.5"


async def test_model_not_loaded_is_loaded_once_with_a_ttl_then_answers(
    sim: Simulator, lms: str, tmp_path: Path
) -> None:
    sim.script(QWEN, Reply(content="loaded for you"))
    async with open_stack(sim, tmp_path, lms_cli=lms) as stack:
        with trio.fail_after(20):
            # Asking LM Studio directly for a model it has not loaded is a clear error ...
            direct = InferenceTarget(
                model=QWEN, identifier=QWEN, base_url=sim.openai_url, headers={}
            )
            with pytest.raises(ModelNotLoaded):
                await stack.inference.chat(direct, request=chat_request())
            # ... while a tool call loads it first (once, with the default TTL).
            result = await stack.mcp.call_tool("chat_completion", {"prompt": "hi"})
        assert not result.is_error, tool_text(result)
        assert result.structured_content is not None
        assert result.structured_content["content"] == "loaded for you"
        (record,) = sim.state.loads
        assert (record.identifier, record.ttl_s, record.via) == (QWEN, 600.0, "cli")
        assert stack.state(QWEN) is State.READY


async def test_model_unloaded_during_execution_is_reloaded_and_the_call_recovers(
    sim: Simulator, lms: str, tmp_path: Path
) -> None:
    async with open_stack(sim, tmp_path, lms_cli=lms) as stack:
        with trio.fail_after(20):
            await stack.orch.ensure_loaded(QWEN)
            sim.faults.unload_during_inference.add(QWEN)  # LM Studio drops it mid-answer
            reload_gate = sim.faults.hold_load(QWEN)
            results = []

            async def call() -> None:
                results.append(await stack.mcp.call_tool("chat_completion", {"prompt": "hi"}))

            async with trio.open_nursery() as nursery:
                nursery.start_soon(call)
                # The first answer failed and the model is being loaded again: heal LM Studio.
                await sim.wait_for(lambda: len(sim.cli_runs("load")) == 2)
                sim.faults.unload_during_inference.clear()
                reload_gate.set()
        (result,) = results
        assert not result.is_error, tool_text(result)
        assert sim.state.evictions == [QWEN]
        assert [r.via for r in sim.state.loads] == ["cli", "cli"]
        assert stack.state(QWEN) is State.READY


async def test_cli_not_installed_falls_back_to_a_jit_load_that_carries_the_ttl(
    sim: Simulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    remove_lms(monkeypatch, tmp_path)
    sim.state.jit = True
    async with open_stack(sim, tmp_path) as stack:
        with trio.fail_after(20):
            status = await stack.orch.ensure_loaded(QWEN, ttl_s=120)
    assert status.state is State.READY
    (record,) = sim.state.loads
    assert (record.via, record.ttl_s) == ("jit", 120.0)
    assert sim.cli_calls == []


async def test_cli_not_installed_and_jit_off_says_what_to_install(
    sim: Simulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    remove_lms(monkeypatch, tmp_path)
    async with open_stack(sim, tmp_path) as stack:
        with trio.fail_after(20):
            result = await stack.mcp.call_tool("load_model", {"model": QWEN})
            with pytest.raises(BackendRejected, match="install the `lms` CLI"):
                await stack.orch.ensure_loaded(QWEN)
    assert result.is_error
    assert "Just-in-Time" in tool_text(result)
    assert "lms" in tool_text(result)
    assert sim.loaded() == []


async def test_cli_timeout_kills_and_reaps_lms_and_the_next_request_loads(
    sim: Simulator, lms: str, tmp_path: Path
) -> None:
    sim.faults.cli_hang.add("load")
    children = child_pids()
    async with open_stack(sim, tmp_path, lms_cli=lms) as stack:
        with trio.fail_after(30):
            with pytest.raises(BackendTimeout, match="lms"):
                await stack.orch.ensure_loaded(QWEN)
            (hung,) = sim.cli_runs("load")
            assert not pid_alive(hung.pid)  # killed at the deadline and reaped
            assert child_pids() == children
            assert stack.state(QWEN) is State.UNLOADED
            sim.faults.cli_hang.clear()
            status = await stack.orch.ensure_loaded(QWEN)
    assert status.state is State.READY
    assert len(sim.cli_runs("load")) == 2


async def test_verification_failure_after_load_is_never_ready_and_recovers(
    sim: Simulator, lms: str, tmp_path: Path
) -> None:
    sim.faults.load_absent.add(QWEN)  # "loaded successfully", but never listed
    async with open_stack(sim, tmp_path, lms_cli=lms) as stack:
        with trio.fail_after(20):
            with pytest.raises(VerifyFailed, match="was not listed"):
                await stack.orch.ensure_loaded(QWEN)
            # Cleaned up (unloaded: it may be there all the same) before it settles (issue 16).
            while stack.state(QWEN) is State.EXPIRING:
                await trio.sleep(0.01)  # no event exposes actor states; bounded above
            status = next(s for s in stack.orch.status() if s.model == QWEN)
            assert (status.state, status.consecutive_failures) == (State.UNLOADED, 1)
            sim.faults.load_absent.clear()
            assert (await stack.orch.ensure_loaded(QWEN)).state is State.READY
    assert len(sim.cli_runs("load")) == 2


@pytest.mark.parametrize("outcome", ["success", "failure"])
async def test_concurrent_loading_of_one_model_is_one_load_with_one_outcome(
    sim: Simulator, lms: str, tmp_path: Path, outcome: str
) -> None:
    gate = sim.faults.hold_load(QWEN)
    if outcome == "failure":
        sim.faults.load_errors[QWEN] = GUARDRAIL_MESSAGE
    answers: list[str] = []
    async with open_stack(sim, tmp_path, lms_cli=lms) as stack:

        async def caller(n: int) -> None:
            try:
                if n % 2:
                    async with stack.orch.lease(QWEN) as lease:
                        answers.append(lease.status.state.value)
                else:
                    answers.append((await stack.orch.ensure_loaded(QWEN)).state.value)
            except OrchestratorError as exc:
                answers.append(type(exc).__name__)

        with trio.fail_after(20):
            async with trio.open_nursery() as nursery:
                for n in range(50):
                    nursery.start_soon(caller, n)
                await sim.wait_for(lambda: bool(sim.cli_runs("load")))
                await trio.testing.wait_all_tasks_blocked()
                gate.set()
    expected = "READY" if outcome == "success" else "BackendRejected"
    assert answers == [expected] * 50
    assert len(sim.cli_runs("load")) == 1
    assert max(stack.backend.max_in_flight.values()) == 1


async def test_concurrent_agent_runs_share_one_load_and_leave_no_tool_server(
    sim: Simulator, lms: str, tmp_path: Path
) -> None:
    servers = write_mcp_json(tmp_path / "mcp.json", {"toy": toy_entry()})
    agents = AgentSettings(mcp_config=str(servers), roots=(str(tmp_path),), start_timeout_s=30.0)
    gate = sim.faults.hold_load(QWEN)
    results: dict[int, CallToolResult] = {}
    async with open_stack(sim, tmp_path, lms_cli=lms, agent_settings=agents) as stack:

        async def run(n: int) -> None:
            arguments = {"mcp_name": "toy", "task": f"task number {n}"}
            results[n] = await stack.mcp.call_tool("autonomous_with_mcp", arguments)

        with trio.fail_after(60):
            async with trio.open_nursery() as nursery:
                for n in range(4):
                    nursery.start_soon(run, n)
                await sim.wait_for(lambda: bool(sim.cli_runs("load")))
                gate.set()
    for n, result in results.items():
        assert not result.is_error, tool_text(result)
        assert result.structured_content is not None
        assert result.structured_content["success"] is True
        assert f"task number {n}" in result.structured_content["answer"]  # its own answer
    assert len(results) == 4
    assert len(sim.cli_runs("load")) == 1
    assert sim.count("/v1/chat/completions") == 4
    assert agent_child_pids() == []  # every run's toy server is gone


async def test_many_models_stay_bounded_lru_idle_evicted_first_in_use_never(
    sim: Simulator, lms: str, tmp_path: Path
) -> None:
    async with open_stack(sim, tmp_path, lms_cli=lms, max_loaded_models=2) as stack:
        orch = stack.orch
        with trio.fail_after(30):
            await orch.ensure_loaded(QWEN)
            await orch.ensure_loaded(GEMMA)
            async with orch.lease(QWEN):  # QWEN: in use, and the most recently used
                await orch.ensure_loaded(GPT)  # room: GEMMA, idle and least recent, goes
                assert sorted(sim.loaded()) == sorted([QWEN, GPT])
                await orch.ensure_loaded(EMBED)  # GPT is idle, QWEN in use: GPT goes
                assert sorted(sim.loaded()) == sorted([QWEN, EMBED])
            assert sim.state.unloads == [GEMMA, GPT]
            # Every load carried a TTL, so LM Studio frees them even if we die.
            assert {r.identifier: r.ttl_s for r in sim.state.loads} == dict.fromkeys(
                [QWEN, GEMMA, GPT, EMBED], 600.0
            )
            assert sim.state.advance(600.0) == [QWEN, EMBED]
            # Our own idle TTL unloads too: a short one expires while we wait.
            await orch.ensure_loaded(GEMMA, ttl_s=0.05)
            await sim.wait_for(lambda: GEMMA in sim.state.unloads[2:])
            # An unload request now joins the expiry under way: no second unload.
            assert (await orch.unload(GEMMA)).state is State.UNLOADED
        assert sim.state.unloads == [GEMMA, GPT, GEMMA]
        assert max(stack.backend.max_in_flight.values()) == 1


async def test_rapid_load_unload_cycles_leave_nothing_behind(lms: str, tmp_path: Path) -> None:
    fds, children = open_fds(), child_pids()
    async with open_simulator(jit=False) as sim, open_stack(sim, tmp_path, lms_cli=lms) as stack:
        with trio.fail_after(60):
            for model in (QWEN, GEMMA):  # both actors exist before the baseline
                await stack.orch.ensure_loaded(model)
                await stack.orch.unload(model)
            tasks = task_names()
            for _ in range(8):
                async with trio.open_nursery() as nursery:
                    for model in (QWEN, GEMMA):
                        nursery.start_soon(stack.orch.ensure_loaded, model)
                for model in (QWEN, GEMMA):
                    assert (await stack.orch.unload(model)).state is State.UNLOADED
            assert task_names() == tasks
    assert sim.loaded() == []
    assert len(sim.state.loads) == len(sim.state.unloads) == 18
    assert not any(pid_alive(c.pid) for c in sim.cli_calls)
    assert child_pids() == children
    assert open_fds() == fds


@pytest.mark.parametrize("keep_loaded", [False, True])
async def test_a_load_during_a_server_restart_waits_and_loads_within_2s_of_its_return(
    sim: Simulator, lms: str, tmp_path: Path, keep_loaded: bool
) -> None:
    # Issue 16: an outage is the backend's (one health state), not the model's breaker.
    gate = sim.faults.hold_load(QWEN)
    async with open_stack(sim, tmp_path, lms_cli=lms, breaker_threshold=1) as stack:
        with trio.fail_after(30):
            async with trio.open_nursery() as nursery:
                statuses: list[ModelStatus] = []

                async def caller() -> None:
                    statuses.append(await stack.orch.ensure_loaded(QWEN, timeout_s=25))

                nursery.start_soon(caller)
                await sim.wait_for(lambda: bool(sim.cli_runs("load")))
                await sim.stop(keep_loaded=keep_loaded)  # LM Studio goes away mid-load
                (first,) = sim.cli_runs("load")
                await gone(first.pid)
                await stack.backend.seen_down()  # the health state probed it: down
                assert stack.orch.backend_health().up is False
                assert stack.state(QWEN) is State.LOADING  # waiting for LM Studio, not failed
                gate.set()
                await sim.start()
                back_at = trio.current_time()
            ready_after = trio.current_time() - back_at
    (status,) = statuses
    assert status.state is State.READY
    assert ready_after <= 2.0
    assert status.consecutive_failures == 0  # no reset_breaker needed
    assert len(sim.cli_runs("load")) == 2
    assert [r.identifier for r in sim.state.loads] == [QWEN]


async def _refuse_an_oversized_answer(sim: Simulator, lms: str, tmp_path: Path, route: str) -> int:
    """Make ``route`` answer 10 MiB without a Content-Length, check the refusal and the
    recovery, and return how many traced bytes were still held once the caller had its error.
    """
    unexpected: list[str] = []
    async with open_stack(sim, tmp_path, lms_cli=lms) as stack:
        with trio.fail_after(30), counting_unraisable(Counter(), unexpected):
            await stack.orch.ensure_loaded(QWEN)
            # An unload of QWEN, or a load of GEMMA (its catalogue read), meets the body.
            call = stack.orch.unload if route.endswith("unload") else stack.orch.ensure_loaded
            model = QWEN if route.endswith("unload") else GEMMA
            tracemalloc.start()
            try:
                before = _traced()
                sim.faults.route_chunked[route] = (b" " * 65536, 160)
                with pytest.raises(BackendProtocolError, match="larger than 8388608 bytes"):
                    await call(model)
                sim.faults.route_chunked.clear()
                await trio.testing.wait_all_tasks_blocked()
                retained = _traced() - before
            finally:
                tracemalloc.stop()
            # The refusal is not retried and leaves nothing stuck: the model loads again.
            assert (await stack.orch.ensure_loaded(model)).state is State.READY
    assert unexpected == []
    return retained


def _traced() -> int:
    return traced_bytes(("*/tests/fakes/*", "*/hypercorn/*"))


ROUTES_READ_BOUNDED = ["/api/v1/models/unload", "/api/v1/models"]


@pytest.mark.parametrize("route", ROUTES_READ_BOUNDED)
async def test_an_oversized_answer_is_a_bounded_protocol_error_and_the_model_loads_again(
    sim: Simulator, lms: str, tmp_path: Path, route: str
) -> None:
    # The assertions are in the helper: the refusal names the limit, nothing is retried
    # into a stuck state, the model loads again, and no unexpected unraisable exception.
    await _refuse_an_oversized_answer(sim, lms, tmp_path, route)


# Found by the soak's huge_body fault: an idle actor's last message keeps the error,
# whose traceback keeps read_bounded's frame; the 8 MiB it had buffered must not stay.
@pytest.mark.parametrize("route", ROUTES_READ_BOUNDED)
async def test_an_oversized_answer_is_refused_and_not_kept_once_the_caller_has_its_error(
    sim: Simulator, lms: str, tmp_path: Path, route: str
) -> None:
    retained = await _refuse_an_oversized_answer(sim, lms, tmp_path, route)

    assert retained < 1024 * 1024, f"{retained} bytes still held after the error"
