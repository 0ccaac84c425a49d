"""Many simultaneous tool calls for one cold model share one load."""

from __future__ import annotations

from typing import Any

import trio
import trio.testing

from orchestrator import State
from tests.mcp_frontend.mcp_support import QWEN, Fake, LMStudio, ok

CALLS = 50


async def test_fifty_simultaneous_load_calls_for_a_cold_model_make_one_load(fake: Fake) -> None:
    gate = fake.backend.script("model-a").gate = trio.Event()
    results: list[dict[str, Any]] = []

    async def call() -> None:
        results.append(ok(await fake.client.call_tool("load_model", {"model": "model-a"})))

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            for _ in range(CALLS):
                nursery.start_soon(call)
            # Every call is waiting on the one load before it is allowed to finish.
            while fake.backend.loads_in_flight.get("model-a", 0) != 1:
                await trio.testing.wait_all_tasks_blocked()
            await trio.testing.wait_all_tasks_blocked()
            gate.set()

    assert fake.backend.count("load") == 1
    assert fake.backend.max_concurrent_loads["model-a"] == 1
    assert len(results) == CALLS
    assert all(r["status"]["state"] == "READY" for r in results)
    assert not any(r["was_ready"] for r in results)  # all fifty waited on the same load


async def test_fifty_simultaneous_chats_for_a_cold_model_make_one_load(lm: LMStudio) -> None:
    gate = lm.sim.faults.hold_load(QWEN)
    answers: list[str] = []

    async def call(i: int) -> None:
        out = ok(await lm.client.call_tool("chat_completion", {"prompt": f"echo {i}"}))
        answers.append(str(out["content"]))

    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            for i in range(CALLS):
                nursery.start_soon(call, i)
            await lm.sim.wait_for(lambda: len(lm.sim.cli_runs("load")) == 1)
            gate.set()

    assert len(lm.sim.state.loads) == 1
    assert len(lm.sim.cli_runs("load")) == 1
    assert len(answers) == CALLS
    assert len(lm.sim.requests("/v1/chat/completions")) == CALLS
    await trio.testing.wait_all_tasks_blocked()  # releases are posted; let the actor take them
    status = next(s for s in lm.orch.status() if s.model == QWEN)
    assert (status.state, status.in_flight) == (State.READY, 0)
