"""The slot scheduler through the orchestrator (issue 22), checked against the backend's truth."""

from __future__ import annotations

import random

import trio
import trio.testing

from orchestrator import Config, open_orchestrator
from orchestrator.api import Orchestrator
from orchestrator.testing import FakeBackend

LOAD_S = 1.5
ANSWER_S = 0.5


class CountingBackend(FakeBackend):
    """A fake backend that remembers the most models it ever held at once."""

    def __init__(self, models: list[str]) -> None:
        super().__init__(models)
        self.most_loaded = 0
        for model in models:
            self.script(model).load_delay_s = LOAD_S

    async def load(
        self, key: str, *, identifier: str, ttl_s: float, context_length: int | None = None
    ) -> None:
        await super().load(key, identifier=identifier, ttl_s=ttl_s, context_length=context_length)
        self.most_loaded = max(self.most_loaded, len(self.loaded))


async def ask(orch: Orchestrator, model: str, waits: list[float]) -> None:
    """One request: wait for the model, then answer for ANSWER_S under a lease."""
    started = trio.current_time()
    async with orch.lease(model):
        waits.append(trio.current_time() - started)
        await trio.sleep(ANSWER_S)


def swaps(orch: Orchestrator) -> dict[str, int]:
    return orch.scheduler_status().swaps


async def test_a_cold_model_waits_for_the_loaded_one_to_drain(
    autojump_clock: trio.testing.MockClock,
) -> None:
    backend = CountingBackend(["a", "b"])
    config = Config(max_loaded_models=1, swap_max_wait_s=30)
    async with open_orchestrator(backend, config) as orch:
        await orch.ensure_loaded("a")
        b_waits: list[float] = []
        async with trio.open_nursery() as nursery, orch.lease("a"):
            nursery.start_soon(ask, orch, "b", b_waits)
            await trio.sleep(3)
            # The lease holds "a": "b" queues for a slot instead of forcing a swap.
            (queue,) = orch.scheduler_status().queues
            assert (queue.model, queue.queued) == ("b", 1)
            assert [m.key for m in await backend.list_loaded()] == ["a"]
        assert b_waits == [3 + LOAD_S]  # "a" drained at 3 s, then "b" loaded
        assert swaps(orch) == {"drained": 1}
        assert backend.most_loaded == 1


async def busy_a_then_b(config: Config, requests_for_a: int) -> tuple[Orchestrator, float, int]:
    """Keep "a" busy with overlapping requests (it never drains on its own); ask for "b" at 1 s.

    Returns the orchestrator (stopped), "b"'s wait, and how many of "a"'s requests were served.
    """
    backend = CountingBackend(["a", "b"])
    a_waits: list[float] = []
    b_waits: list[float] = []
    async with open_orchestrator(backend, config) as orch:
        await orch.ensure_loaded("a")

        async def keep_busy() -> None:
            for _ in range(requests_for_a):
                nursery.start_soon(ask, orch, "a", a_waits)
                await trio.sleep(ANSWER_S / 2)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(keep_busy)
            await trio.sleep(1)
            await ask(orch, "b", b_waits)
    assert backend.most_loaded == 1
    return orch, b_waits[0], len(a_waits)


async def test_a_model_kept_busy_is_swapped_out_once_a_waiter_reaches_its_bound(
    autojump_clock: trio.testing.MockClock,
) -> None:
    bound = 10.0
    config = Config(max_loaded_models=1, swap_max_wait_s=bound, swap_max_batches=1000)
    orch, b_wait, a_served = await busy_a_then_b(config, 60)
    # The swap is forced at the bound; "a" then drains its last answer, unloads, "b" loads.
    assert bound <= b_wait <= bound + ANSWER_S + LOAD_S
    assert swaps(orch)["fairness_bound"] == 1
    assert a_served == 60  # "a"'s requests queued meanwhile were served afterwards


async def test_a_model_that_ran_its_batches_is_swapped_out_before_the_bound(
    autojump_clock: trio.testing.MockClock,
) -> None:
    config = Config(max_loaded_models=1, swap_max_wait_s=60, swap_max_batches=4)
    orch, b_wait, _ = await busy_a_then_b(config, 40)
    # Four more requests for "a" (one batch each), then it drains and "b" loads.
    assert b_wait <= 4 * ANSWER_S / 2 + ANSWER_S + LOAD_S
    assert swaps(orch)["batch_limit"] == 1


async def test_a_mixed_load_never_holds_more_than_allowed_and_waits_stay_bounded(
    autojump_clock: trio.testing.MockClock,
) -> None:
    models = ["a", "b", "c"]
    backend = CountingBackend(models)
    bound = 8.0
    config = Config(max_loaded_models=1, swap_max_wait_s=bound)
    rng = random.Random(22)
    waits: list[float] = []
    async with open_orchestrator(backend, config) as orch:

        async def agent() -> None:
            for _ in range(10):
                await ask(orch, rng.choice(models), waits)

        with trio.fail_after(600):
            async with trio.open_nursery() as nursery:
                for _ in range(12):
                    nursery.start_soon(agent)
        assert len(waits) == 120
        assert backend.most_loaded == 1
        # A waiter forces the swap at its bound; the loaded model then drains (one answer),
        # unloads, and each model ahead of it in the rotation gets one load and one batch.
        worst = bound + (len(models) - 1) * (ANSWER_S + LOAD_S) + ANSWER_S + LOAD_S
        assert max(waits) <= worst
        assert orch.scheduler_status().queues == []
        assert sum(swaps(orch).values()) == backend.count("unload")
