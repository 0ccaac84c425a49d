"""Bounded memory: max_loaded_models and the memory budget, with LRU idle eviction."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from orchestrator import CapacityExhausted, Config, ModelInfo, State, open_orchestrator
from orchestrator.capacity import CapacityPool, Resident
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


async def test_models_found_at_start_count_against_the_limit_and_are_never_evicted(
    autojump_clock: trio.testing.MockClock,
) -> None:
    backend = FakeBackend([ModelInfo(key="a", size_bytes=5_000), ModelInfo(key="b")])
    backend.preload("a")
    config = Config(max_loaded_models=1, memory_budget_bytes=8_000)
    async with open_orchestrator(backend, config) as orch:
        await trio.testing.wait_all_tasks_blocked()
        assert states(orch)["a"] is State.READY
        # a is foreign (someone else loaded it): it holds the only slot and is not ours to evict.
        with pytest.raises(CapacityExhausted, match="loaded by another client"):
            await orch.ensure_loaded("b", timeout_s=5.0)
        assert states(orch)["a"] is State.READY
        assert set(backend.loaded) == {"a"}
        assert backend.count("unload", "a") == 0


async def test_foreign_models_are_evicted_when_managed_by_choice(
    autojump_clock: trio.testing.MockClock,
) -> None:
    backend = FakeBackend([ModelInfo(key="a", size_bytes=5_000), ModelInfo(key="b")])
    backend.preload("a")
    config = Config(max_loaded_models=1, memory_budget_bytes=8_000, manage_foreign=True)
    async with open_orchestrator(backend, config) as orch:
        await trio.testing.wait_all_tasks_blocked()
        assert states(orch)["a"] is State.READY
        await orch.ensure_loaded("b")  # the adopted a is idle: it is evicted to make room
        assert states(orch) == {"a": State.UNLOADED, "b": State.READY}
        assert set(backend.loaded) == {"b"}


# -- the pool alone, with residents drawn by hand --


class Room:
    """Residents and the evictions the pool asked for; nothing unloads unless told."""

    def __init__(self, max_models: int = 1, budget: int | None = None) -> None:
        self.residents: list[Resident] = []
        self.evicted: list[str] = []
        self.pool = CapacityPool(max_models, budget, lambda: self.residents, self.evicted.append)

    def resident(self, model: str, *, idle: bool = True, used_at: float = 0.0) -> None:
        self.residents.append(
            Resident(
                model=model,
                state="READY",
                idle=idle,
                in_flight=0 if idle else 1,
                last_used_at=used_at,
            )
        )


async def test_when_the_wait_runs_out_the_reservation_fails_and_holds_nothing(
    autojump_clock: trio.testing.MockClock,
) -> None:
    room = Room()
    await room.pool.reserve("a", None, wait_s=1)
    room.resident("a", idle=False)
    with pytest.raises(CapacityExhausted, match=r"no room to load 'b' within 5s"):
        await room.pool.reserve("b", None, wait_s=5)
    assert room.pool.holds("a")
    assert not room.pool.holds("b")
    assert room.pool.waiting_reason("b") is not None  # kept for a caller that timed out too
    room.pool.release("a")
    assert not room.pool.holds("a")
    await room.pool.reserve("b", None, wait_s=1)
    assert room.pool.holds("b")
    assert room.pool.waiting_reason("b") is None  # a success forgets the old refusal


async def test_a_model_exactly_the_size_of_the_budget_fits_and_unknown_sizes_take_no_bytes(
    autojump_clock: trio.testing.MockClock,
) -> None:
    room = Room(max_models=3, budget=10)
    room.pool.adopt("c", None)
    await room.pool.reserve("a", 10, wait_s=1)
    await room.pool.reserve("b", None, wait_s=1)
    assert room.evicted == []
    assert all(room.pool.holds(x) for x in "abc")


async def test_adopted_models_count_against_the_limit_and_the_budget(
    autojump_clock: trio.testing.MockClock,
) -> None:
    room = Room(max_models=2, budget=10)
    room.pool.adopt("a", 6)
    room.resident("a", idle=False)
    with pytest.raises(CapacityExhausted, match="memory_budget_bytes=10"):
        await room.pool.reserve("b", 5, wait_s=1)
    room.pool.adopt("c", None)
    room.resident("c", idle=False)
    with pytest.raises(CapacityExhausted, match=r"max_loaded_models=2.*a \(READY, 1 in flight\)"):
        await room.pool.reserve("d", None, wait_s=1)


async def test_only_idle_slot_holders_are_evicted_and_the_reason_names_the_holders(
    autojump_clock: trio.testing.MockClock,
) -> None:
    room = Room()
    await room.pool.reserve("a", None, wait_s=1)
    room.resident("x", used_at=0.0)  # idle and older, but holds no slot: evicting it frees none
    room.resident("a", used_at=5.0)
    with pytest.raises(CapacityExhausted) as info:
        await room.pool.reserve("b", None, wait_s=1)
    assert room.evicted == ["a"]
    assert "(a (READY, 0 in flight))" in str(info.value)  # the holders only, not x nor b
    assert "memory_budget_bytes" not in str(info.value)  # no budget configured
    room.residents.clear()  # the holder has no actor any more: named from the slots
    with pytest.raises(CapacityExhausted, match=r"is held by models in use \(a\)"):
        await room.pool.reserve("b", None, wait_s=1)


async def test_a_busy_slot_holder_is_never_asked_to_unload_even_if_least_recently_used(
    autojump_clock: trio.testing.MockClock,
) -> None:
    room = Room(max_models=2)
    await room.pool.reserve("a", None, wait_s=1)
    await room.pool.reserve("c", None, wait_s=1)
    room.resident("a", idle=False, used_at=0.0)  # in use, and the oldest
    room.resident("c", used_at=5.0)
    with pytest.raises(CapacityExhausted):  # c is asked, but nothing here unloads it
        await room.pool.reserve("b", None, wait_s=1)
    assert set(room.evicted) == {"c"}


async def test_a_change_wakes_a_waiting_load_once_per_change() -> None:
    room = Room()
    await room.pool.reserve("a", None, wait_s=1)
    room.resident("a")
    async with trio.open_nursery() as nursery:
        nursery.start_soon(room.pool.reserve, "b", None, 30)
        with trio.fail_after(5):  # real time: a load spinning on a stale wake-up never blocks
            await trio.testing.wait_all_tasks_blocked()
            assert room.evicted == ["a"]
            room.pool.changed()  # a woke (say a lease ended) but still holds its slot
            await trio.testing.wait_all_tasks_blocked()
        assert room.evicted == ["a", "a"]  # one more look, then asleep again
        room.pool.release("a")
    assert room.pool.holds("b")


async def test_instances_no_actor_manages_hold_room_until_no_longer_listed() -> None:
    pool = CapacityPool(2, 10_000, residents=list, evict=lambda _: None)
    pool.set_unmanaged({"a:2": 6_000})  # another client's second instance of a
    await pool.reserve("b", 3_000, wait_s=1.0)
    assert pool.free_slots() == 0

    with pytest.raises(CapacityExhausted, match=r"a:2 \(loaded by another client\)"):
        await pool.reserve("c", 100, wait_s=0.05)  # the count is full
    pool.release("b")
    with pytest.raises(CapacityExhausted, match="a:2"):
        await pool.reserve("c", 5_000, wait_s=0.05)  # a slot, but not the bytes

    async with trio.open_nursery() as nursery:
        nursery.start_soon(pool.reserve, "c", 5_000, 5.0)
        await trio.testing.wait_all_tasks_blocked()
        assert not pool.holds("c")
        pool.set_unmanaged({})  # a listing no longer shows it: the waiting load goes on
    assert pool.holds("c")
    assert pool.free_slots() == 1
