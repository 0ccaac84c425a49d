"""The orchestrator end to end on the real LM Studio backend, the simulator and the fake lms."""

from __future__ import annotations

import msgspec
import pytest
import trio
import trio.testing

from orchestrator import (
    BackendRejected,
    BackendUnreachable,
    BreakerOpen,
    InvalidRequest,
    ModelNotLoaded,
    Orchestrator,
    State,
    VerifyFailed,
    open_orchestrator,
)
from orchestrator.backends.lmstudio import LMStudioBackend
from orchestrator.inference import ChatMessage, ChatRequest, InferenceClient, InferenceTarget
from tests.fakes import GUARDRAIL_MESSAGE, Reply, Simulator, open_simulator
from tests.fakes.fixtures import make_backend
from tests.reliability.stack import FAST, QWEN

TOKEN = "sk-lm-abcdefgh:abcdefghijklmnopqrst"


def state(orch: Orchestrator, model: str) -> State:
    return next(s.state for s in orch.status() if s.model == model)


async def chat_once_retrying(orch: Orchestrator, client: InferenceClient, text: str) -> str:
    """What the frontend does: lease, infer, and on "not loaded" report it lost and retry once."""
    for attempt in range(2):
        async with orch.lease(QWEN) as lease:
            try:
                target = InferenceTarget(
                    model=QWEN,
                    identifier=lease.identifier,
                    base_url=orch.backend.base_url(lease.identifier),
                    headers=orch.backend.http_headers(),
                )
                answer = await client.chat(
                    target, ChatRequest(messages=[ChatMessage(role="user", content=text)])
                )
            except ModelNotLoaded:
                if attempt:
                    raise
                lease.lost()
                continue
            return answer.message.text
    raise AssertionError("unreachable")


async def cold_requests(sim: Simulator, orch: Orchestrator, n: int) -> list[State]:
    """``n`` concurrent ``ensure_loaded`` calls while the load is held; their final states."""
    gate = sim.faults.hold_load(QWEN)
    results: list[State] = []

    async def want() -> None:
        results.append((await orch.ensure_loaded(QWEN, ttl_s=900, timeout_s=30)).state)

    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            for _ in range(n):
                nursery.start_soon(want)
            await sim.wait_for(lambda: bool(sim.cli_runs("load")))
            await trio.testing.wait_all_tasks_blocked()
            assert state(orch, QWEN) is State.LOADING
            gate.set()
    return results


async def test_concurrent_requests_for_a_cold_model_share_one_load(
    sim: Simulator, backend: LMStudioBackend
) -> None:
    async with open_orchestrator(backend, FAST) as orch:
        assert await cold_requests(sim, orch, 5) == [State.READY] * 5
        assert len(sim.cli_runs("load")) == 1
        (record,) = sim.state.loads
        assert (record.identifier, record.ttl_s, record.via) == (QWEN, 900.0, "cli")
    assert sim.loaded() == []  # unloaded at shutdown


async def test_default_ttl_reaches_lm_studio(sim: Simulator, backend: LMStudioBackend) -> None:
    async with open_orchestrator(backend, FAST) as orch:
        with trio.fail_after(20):
            status = await orch.ensure_loaded(QWEN)
        assert status.ttl_s == FAST.default_ttl_s
        assert sim.state.instances[QWEN].ttl_s == FAST.default_ttl_s


async def test_eviction_behind_our_back_is_recovered_on_the_next_request(
    sim: Simulator, backend: LMStudioBackend
) -> None:
    sim.script(QWEN, Reply(content="first"), Reply(content="second"))
    async with open_orchestrator(backend, FAST) as orch, InferenceClient(timeout_s=10) as client:
        with trio.fail_after(20):
            assert await chat_once_retrying(orch, client, "a") == "first"
            sim.evict(QWEN)  # LM Studio unloaded it; the orchestrator still thinks READY
            assert await chat_once_retrying(orch, client, "b") == "second"
        assert [r.via for r in sim.state.loads] == ["cli", "cli"]
        assert state(orch, QWEN) is State.READY


async def test_a_model_that_always_fails_opens_the_breaker(
    sim: Simulator, backend: LMStudioBackend
) -> None:
    sim.faults.load_errors[QWEN] = GUARDRAIL_MESSAGE
    async with open_orchestrator(backend, FAST) as orch:
        with trio.fail_after(20):
            for _ in range(FAST.breaker_threshold):
                with pytest.raises(BackendRejected, match="insufficient system resources"):
                    await orch.ensure_loaded(QWEN)
            runs = len(sim.cli_runs("load"))
            assert runs == FAST.breaker_threshold  # permanent: never retried
            with pytest.raises(BreakerOpen) as info:
                await orch.ensure_loaded(QWEN)
        assert info.value.retry_after_s > 0
        assert len(sim.cli_runs("load")) == runs  # fails fast, LM Studio untouched
        assert state(orch, QWEN) is State.BREAKER_OPEN


async def test_a_load_that_reports_success_but_is_absent_fails_verification(
    sim: Simulator, backend: LMStudioBackend
) -> None:
    sim.faults.load_absent.add(QWEN)
    async with open_orchestrator(backend, FAST) as orch:
        with trio.fail_after(20), pytest.raises(VerifyFailed, match="was not listed"):
            await orch.ensure_loaded(QWEN)


async def test_lms_that_cannot_reach_lm_studio_is_retried_and_never_opens_the_breaker(
    sim: Simulator, backend: LMStudioBackend
) -> None:
    """Issue 17 / F3: the real "cannot reach" text is transient and not the model's failure.

    DESIGN.md principle 14: backend health is not a model's failure.
    """
    sim.faults.cli_fail["load"] = (
        1,
        "Error: The server does not appear to be running at 127.0.0.1:1234. Please make sure "
        "the server is running and accessible at the specified address.\n",
    )
    config = msgspec.structs.replace(FAST, retry_attempts=2, breaker_threshold=1)
    async with open_orchestrator(backend, config) as orch:
        with trio.fail_after(20):
            for _ in range(2):
                with pytest.raises(BackendUnreachable, match="does not appear to be running"):
                    await orch.ensure_loaded(QWEN)
        assert len(sim.cli_runs("load")) == 4  # retried each time, never failing fast
        (status,) = orch.status()
        assert status.consecutive_failures == 0
        assert status.state is not State.BREAKER_OPEN


async def test_a_lease_longer_than_lm_studios_ttl_keeps_the_model_loaded(
    sim: Simulator, backend: LMStudioBackend
) -> None:
    """Issue 17 / F10: LM Studio's idle timer runs between a lease's requests.

    LM Studio got TTL 2 s; the lease is held while nothing is asked of the model
    (an agent's slow tool call). The keep-alive refreshes the timer every half TTL,
    so advancing LM Studio's clock by 1.5 s after a refresh leaves it loaded;
    without it, 1 s (the first refresh) + 1.5 s > 2 s would have unloaded it.
    """
    async with open_orchestrator(backend, FAST) as orch:
        with trio.fail_after(20):
            async with orch.lease(QWEN, ttl_s=2) as lease:
                await sim.wait_for(lambda: sim.count("/v1/chat/completions") >= 1)
                (poke,) = sim.requests("/v1/chat/completions")
                assert (poke.body["model"], poke.body["max_tokens"]) == (lease.identifier, 1)
                assert poke.body["ttl"] == 2  # a JIT reload it might cause expires too
                assert sim.state.advance(1.5) == []
                assert sim.loaded() == [QWEN]


async def test_auth_on_non_default_port_20_cold_requests_make_one_cli_load(lms: str) -> None:
    """Issue 17 / F2: with auth on, lms runs as the local client (--port only, no --host)."""
    async with open_simulator(api_token=TOKEN, jit=False) as sim:
        backend = make_backend(sim, lms_cli=lms, api_token=TOKEN)
        async with open_orchestrator(backend, FAST) as orch:
            assert await cold_requests(sim, orch, 20) == [State.READY] * 20
            (run,) = sim.cli_runs("load")
            assert "--host" not in run.argv
            assert run.argv[-2:] == ("--port", sim.base_url.rpartition(":")[2])
            (record,) = sim.state.loads
            assert (record.ttl_s, record.via) == (900.0, "cli")
            health = await backend.health()
            assert "lms as the local client with --port" in health.detail
        await backend.aclose()


async def test_a_context_length_reaches_lm_studio_and_is_read_back(
    sim: Simulator, backend: LMStudioBackend
) -> None:
    """Issue 17 / F5: ensure_loaded(context_length=...) loads with ``lms load -c``."""
    async with open_orchestrator(backend, FAST) as orch:
        with trio.fail_after(20):
            await orch.ensure_loaded(QWEN, context_length=8192)
        (record,) = sim.state.loads
        assert record.context_length == 8192
        (loaded,) = await backend.list_loaded()
        assert loaded.context_length == 8192
        with pytest.raises(InvalidRequest, match="context_length"):
            await orch.ensure_loaded(QWEN, context_length=0)
