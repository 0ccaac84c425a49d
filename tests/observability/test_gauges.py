"""``lmsorch_in_flight_requests`` and ``lmsorch_mailbox_depth`` show work while it exists.

``lmsorch_model_state`` shows a model while an actor manages it, and only then.
"""

from __future__ import annotations

from contextlib import AsyncExitStack

import trio
import trio.testing

from orchestrator import Orchestrator, open_orchestrator
from orchestrator.testing import FakeBackend


def _gauge(orch: Orchestrator, name: str) -> float | None:
    return orch.metrics.registry.get_sample_value(name, {"model": "m"})


async def test_in_flight_counts_the_leases_held() -> None:
    with trio.fail_after(10):
        async with open_orchestrator(FakeBackend(["m"])) as orch:
            async with AsyncExitStack() as leases:
                await leases.enter_async_context(orch.lease("m"))
                assert _gauge(orch, "lmsorch_in_flight_requests") == 1
                await leases.enter_async_context(orch.lease("m"))
                assert _gauge(orch, "lmsorch_in_flight_requests") == 2
            await trio.testing.wait_all_tasks_blocked()  # the actor took both releases
            assert _gauge(orch, "lmsorch_in_flight_requests") == 0


class _DepthSeen(trio.abc.Instrument):
    """Reads the mailbox gauge after every task step (the actor updates it once per message)."""

    def __init__(self, orch: Orchestrator) -> None:
        self.orch = orch
        self.seen: list[float] = []

    def after_task_step(self, task: trio.lowlevel.Task) -> None:
        depth = _gauge(self.orch, "lmsorch_mailbox_depth")
        if depth is not None and (not self.seen or self.seen[-1] != depth):
            self.seen.append(depth)


async def test_mailbox_depth_shows_the_messages_still_queued() -> None:
    backend = FakeBackend(["m"])
    callers = 20
    with trio.fail_after(10):
        async with open_orchestrator(backend) as orch:
            seen = _DepthSeen(orch)
            trio.lowlevel.add_instrument(seen)
            try:
                async with trio.open_nursery() as nursery:
                    for _ in range(callers):  # a burst: all queue before the actor runs
                        nursery.start_soon(orch.ensure_loaded, "m")
            finally:
                trio.lowlevel.remove_instrument(seen)
            assert _gauge(orch, "lmsorch_mailbox_depth") == 0  # drained
    assert backend.count("load", "m") == 1
    assert max(seen.seen) > 0, seen.seen  # the burst was visible while queued
    assert max(seen.seen) < callers  # the first message was being handled
    assert seen.seen[-1] == 0


async def test_model_state_shows_a_model_from_its_actor_start_until_it_stops(
    autojump_clock: trio.testing.MockClock,
) -> None:
    def state(orch: Orchestrator, name: str) -> float | None:
        labels = {"model": "m", "state": name}
        return orch.metrics.registry.get_sample_value("lmsorch_model_state", labels)

    async with open_orchestrator(FakeBackend(["m"])) as orch:
        assert state(orch, "UNLOADED") is None  # no actor yet
        assert (await orch.unload("m")).state.value == "UNLOADED"  # starts one; no transition
        assert state(orch, "UNLOADED") == 1
        await orch.ensure_loaded("m")
        assert (state(orch, "UNLOADED"), state(orch, "READY")) == (0, 1)
        assert orch.metrics.registry.get_sample_value("lmsorch_loaded_models") == 1
    # Stopped (and unloaded): no actor manages m, so no state is claimed for it.
    assert state(orch, "READY") is None
    assert orch.metrics.registry.get_sample_value("lmsorch_loaded_models") == 0
