"""Bounded memory: max_loaded_models and the memory budget, with LRU idle eviction."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from orchestrator import CapacityExhausted, Config, ModelInfo, State, open_orchestrator
from orchestrator.testing import FakeBackend


def states(orch) -> dict[str, State]:  # type: ignore[no-untyped-def]
    return {s.model: s.state for s in orch.status()}


async def test_the_least_recently_used_idle_model_is_evicted_first(
    autojump_clock: trio.testing.MockClock,
) -> None:
    backend = FakeBackend(["a", "b", "c"])
    async with open_orchestrator(backend, Config(max_loaded_models=2)) as orch:
        await orch.ensure_loaded("a")
        await trio.sleep(1)
        await orch.ensure_loaded("b")
        await trio.sleep(1)
        await orch.ensure_loaded("a")  # a is now the most recently used
        await orch.ensure_loaded("c")
        assert states(orch) == {"a": State.READY, "b": State.UNLOADED, "c": State.READY}
        assert set(backend.loaded) == {"a", "c"}
        assert orch.metrics.unloads.labels(model="b", reason="evicted")._value.get() == 1


async def test_a_model_with_a_lease_is_never_evicted(
    autojump_clock: trio.testing.MockClock,
) -> None:
    backend = FakeBackend(["a", "b", "c"])
    async with open_orchestrator(backend, Config(max_loaded_models=2)) as orch, orch.lease("a"):
        await trio.sleep(1)
        await orch.ensure_loaded("b")
        await orch.ensure_loaded("c")  # must evict b (idle), not a (leased, and older)
        assert states(orch) == {"a": State.READY, "b": State.UNLOADED, "c": State.READY}


async def test_when_nothing_can_be_evicted_the_load_waits_then_says_why(
    autojump_clock: trio.testing.MockClock,
) -> None:
    backend = FakeBackend(["a", "b"])
    async with open_orchestrator(backend, Config(max_loaded_models=1)) as orch:
        async with orch.lease("a"):
            start = trio.current_time()
            with pytest.raises(CapacityExhausted) as info:
                await orch.ensure_loaded("b", timeout_s=20)
            assert trio.current_time() - start == pytest.approx(20)
            message = str(info.value)
            assert "max_loaded_models=1" in message
            assert "a (READY, 1 in flight)" in message
            assert states(orch)["a"] is State.READY
            assert orch.status()[1].consecutive_failures == 0  # not the model's fault
        assert backend.count("load", "b") == 0


async def test_a_waiting_load_proceeds_as_soon_as_a_lease_ends(
    autojump_clock: trio.testing.MockClock,
) -> None:
    backend = FakeBackend(["a", "b"])
    async with open_orchestrator(backend, Config(max_loaded_models=1)) as orch:
        done = trio.Event()

        async def load_b() -> None:
            await orch.ensure_loaded("b", timeout_s=100)
            done.set()

        async with trio.open_nursery() as nursery:
            async with orch.lease("a"):
                nursery.start_soon(load_b)
                await trio.sleep(10)
                assert not done.is_set()
            with trio.fail_after(5):
                await done.wait()
        assert states(orch) == {"a": State.UNLOADED, "b": State.READY}


async def test_the_memory_budget_bounds_the_summed_sizes(
    autojump_clock: trio.testing.MockClock,
) -> None:
    models = [ModelInfo(key="big", size_bytes=6_000), ModelInfo(key="small", size_bytes=3_000)]
    models.append(ModelInfo(key="huge", size_bytes=20_000))
    backend = FakeBackend(models)
    config = Config(max_loaded_models=10, memory_budget_bytes=8_000)
    async with open_orchestrator(backend, config) as orch:
        await orch.ensure_loaded("big")
        await orch.ensure_loaded("small")  # 9,000 > 8,000: big (idle, older) goes
        assert states(orch) == {"big": State.UNLOADED, "small": State.READY}
        with pytest.raises(CapacityExhausted, match="more than the whole memory budget"):
            await orch.ensure_loaded("huge")
        assert backend.count("load", "huge") == 0
