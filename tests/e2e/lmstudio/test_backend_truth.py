"""Issue 16 on the LM Studio simulator: the orchestrator reconciles with what it really holds.

Every invariant here is checked against the simulator (``sim.loaded()``), not
only against our own states: two servers on one LM Studio, a model loaded by
hand, an unload answering HTTP 500, a listing too slow for verification, an
LM Studio restart with JIT on, and the TTL a loaded model really has.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import trio
from msgspec.structs import replace

from orchestrator import (
    CapacityExhausted,
    NotOwned,
    Orchestrator,
    State,
    VerifyFailed,
    WaitTimeout,
    open_orchestrator,
)
from orchestrator.backends.lmstudio import LMStudioBackend
from orchestrator.status import ModelStatus, Owner
from tests.fakes import Simulator, open_simulator
from tests.fakes.fixtures import make_backend
from tests.reliability.stack import FAST, GEMMA, QWEN

BOUND_S = 10.0  # every wait below is bounded by this
# Unloads that fail fast, and a reconciler that looks every 50 ms.
CFG = replace(FAST, breaker_cooldown_s=60.0, unload_timeout_s=1.0, reconcile_interval_s=0.05)


def status_of(orch: Orchestrator, model: str) -> ModelStatus | None:
    return next((s for s in orch.status() if s.model == model), None)


def state_of(orch: Orchestrator, model: str) -> State | None:
    status = status_of(orch, model)
    return None if status is None else status.state


async def until(done: Callable[[], bool]) -> None:
    """Wait (bounded) until ``done()``; actor states have no event to wait on."""
    with trio.fail_after(BOUND_S):
        while not done():
            await trio.sleep(0.01)


def unloads_of(sim: Simulator, identifier: str) -> int:
    calls = sim.requests("/api/v1/models/unload", method="POST")
    return sum(
        1 for c in calls if isinstance(c.body, dict) and c.body.get("instance_id") == identifier
    )


def loads(sim: Simulator) -> int:
    return len(sim.cli_runs("load"))  # loads go through `lms load` (ADR 0007)


async def test_two_servers_on_one_lm_studio_never_unload_each_others_models(
    sim: Simulator, lms: str
) -> None:
    a_backend, b_backend = make_backend(sim, lms_cli=lms), make_backend(sim, lms_cli=lms)
    short = replace(CFG, default_ttl_s=0.5, max_loaded_models=2)
    async with (
        open_orchestrator(a_backend, replace(CFG, max_loaded_models=1)) as a,
        open_orchestrator(b_backend, short) as b,
    ):
        await a.ensure_loaded(QWEN, ttl_s=3600.0)  # A's own
        await until(lambda: state_of(b, QWEN) is State.READY)
        status = status_of(b, QWEN)
        assert status is not None
        assert status.owner is Owner.FOREIGN
        # B's unload_model, idle TTL and eviction all leave A's model alone.
        with pytest.raises(NotOwned, match="another client"):
            await b.unload(QWEN)
        async with b.lease(QWEN):  # B still serves requests on it
            pass
        await b.ensure_loaded(GEMMA)  # B's own, with B's short TTL
        await until(lambda: GEMMA not in sim.loaded())  # B's TTL unloaded B's model ...
        assert QWEN in sim.loaded()  # ... and never A's, though idle longer than B's TTL
        # A's limit is 1 and it saw B's GEMMA as foreign: it waited, never evicting it.
        assert unloads_of(sim, QWEN) == 0
        assert unloads_of(sim, GEMMA) == 1
        await a.unload(QWEN)  # A owns it: A may unload it
        assert QWEN not in sim.loaded()
        await until(lambda: state_of(b, QWEN) is State.UNLOADED)  # B sees it gone
    await a_backend.aclose()
    await b_backend.aclose()


async def test_a_full_server_never_evicts_the_other_servers_idle_model(
    sim: Simulator, lms: str
) -> None:
    a_backend, b_backend = make_backend(sim, lms_cli=lms), make_backend(sim, lms_cli=lms)
    async with (
        open_orchestrator(a_backend, replace(CFG, max_loaded_models=1)) as a,
        open_orchestrator(b_backend, CFG) as b,
    ):
        await b.ensure_loaded(GEMMA, ttl_s=3600.0)  # B's, idle from now on
        await until(lambda: state_of(a, GEMMA) is State.READY)  # A sees it, as foreign
        # A's only slot is held by B's idle model: A's load waits and says why, never evicting.
        with pytest.raises((CapacityExhausted, WaitTimeout), match="another client"):
            await a.ensure_loaded(QWEN, timeout_s=1.0)
        assert sim.loaded() == [GEMMA]
        assert unloads_of(sim, GEMMA) == 0
        await b.unload(GEMMA)  # its owner unloads it: A's slot is free again
        await until(lambda: state_of(a, GEMMA) is State.UNLOADED)
        await a.ensure_loaded(QWEN)
        assert sim.loaded() == [QWEN]
    await a_backend.aclose()
    await b_backend.aclose()


async def test_a_model_loaded_by_hand_is_never_unloaded_but_counts_against_memory(
    sim: Simulator, backend: LMStudioBackend
) -> None:
    config = replace(CFG, max_loaded_models=1, default_ttl_s=0.3)
    async with open_orchestrator(backend, config) as orch:
        sim.preload(QWEN, identifier=QWEN)  # the user loads it by hand, after our start
        # unload_model says whose it is instead of answering UNLOADED and leaving it loaded.
        with pytest.raises(NotOwned, match="manage_foreign"):
            await orch.unload(QWEN)
        assert QWEN in sim.loaded()
        await until(lambda: state_of(orch, QWEN) is State.READY)
        # It holds the only slot and is never evicted: the load waits, then says why.
        with pytest.raises((CapacityExhausted, WaitTimeout), match="another client"):
            await orch.ensure_loaded(GEMMA, timeout_s=1.0)
        assert sim.loaded() == [QWEN]
        sim.evict(QWEN)  # the user unloads it by hand: the slot is free again
        await until(lambda: state_of(orch, QWEN) is State.UNLOADED)
        await orch.ensure_loaded(GEMMA)
        assert sim.loaded() == [GEMMA]


async def test_a_second_instance_loaded_by_hand_holds_room_until_unloaded(
    sim: Simulator, backend: LMStudioBackend
) -> None:
    config = replace(CFG, max_loaded_models=2)
    async with open_orchestrator(backend, config) as orch:
        await orch.ensure_loaded(QWEN)
        # Another client loads QWEN again: LM Studio names the second instance QWEN:2,
        # which no request of ours can name, but which takes memory all the same.
        sim.preload(QWEN)
        await until(lambda: orch._sup.pool.free_slots() == 0)
        async with orch.lease(QWEN):  # QWEN in use: nothing of ours can give way
            with pytest.raises((CapacityExhausted, WaitTimeout), match=f"{QWEN}:2"):
                await orch.ensure_loaded(GEMMA, timeout_s=0.5)
            # The caller's timeout and the load's wait for room end together: let the load
            # give up too, or the next request would join it and its 0.5 s wait.
            await until(lambda: state_of(orch, GEMMA) is not State.LOADING)
            assert sorted(sim.loaded()) == [QWEN, f"{QWEN}:2"]  # LM Studio holds 2: the bound
        # QWEN idle and ours gives way to GEMMA; the other client's instance stays.
        await orch.ensure_loaded(GEMMA)
        assert sorted(sim.loaded()) == [GEMMA, f"{QWEN}:2"]
        sim.evict(f"{QWEN}:2")  # the other client unloads its instance: room again,
        await until(lambda: orch._sup.pool.free_slots() == 1)  # once a listing shows it
        await orch.ensure_loaded(QWEN)
        assert sorted(sim.loaded()) == [GEMMA, QWEN]


async def test_a_failing_unload_keeps_its_slot_until_the_backend_confirms(
    sim: Simulator, backend: LMStudioBackend
) -> None:
    config = replace(CFG, max_loaded_models=1)
    async with open_orchestrator(backend, config) as orch:
        await orch.ensure_loaded(QWEN)
        sim.faults.route_status["/api/v1/models/unload"] = 500
        async with trio.open_nursery() as nursery:
            nursery.start_soon(orch.ensure_loaded, GEMMA)  # evicts QWEN: its unload fails
            await until(lambda: unloads_of(sim, QWEN) >= 2)  # failed, and retried
            assert sim.loaded() == [QWEN]  # the bound holds in LM Studio itself
            assert state_of(orch, QWEN) is State.EXPIRING
            del sim.faults.route_status["/api/v1/models/unload"]
        assert sim.loaded() == [GEMMA]
        assert state_of(orch, QWEN) is State.UNLOADED


async def test_a_verification_failed_by_a_slow_listing_is_cleaned_up(
    sim: Simulator, backend: LMStudioBackend
) -> None:
    config = replace(CFG, max_loaded_models=1)
    async with open_orchestrator(backend, config) as orch:
        loading = sim.faults.hold_load(QWEN)
        async with trio.open_nursery() as nursery:
            failed: list[Exception] = []

            async def load() -> None:
                try:
                    await orch.ensure_loaded(QWEN)
                except VerifyFailed as exc:
                    failed.append(exc)

            nursery.start_soon(load)
            with trio.fail_after(BOUND_S):
                await sim.wait_for(lambda: loads(sim) == 1)
            listing = sim.faults.hold_route("/api/v1/models")  # listings hang from now on
            loading.set()
        assert failed, "verification should fail while every listing hangs"
        assert QWEN in sim.loaded()  # it did load: it must not be forgotten
        assert state_of(orch, QWEN) is State.EXPIRING  # keeps its slot while cleaning up
        listing.set()
        del sim.faults.route_gates["/api/v1/models"]
        await until(lambda: state_of(orch, QWEN) is State.UNLOADED)
        assert sim.loaded() == []


async def test_after_an_lm_studio_restart_nothing_is_ready_that_is_not_loaded(lms: str) -> None:
    async with open_simulator(jit=True) as sim:
        backend = make_backend(sim, lms_cli=lms)
        async with open_orchestrator(backend, CFG) as orch:
            await orch.ensure_loaded(QWEN)
            await orch.ensure_loaded(GEMMA)
            await sim.restart()  # the LM Studio app restarted: its models are gone
            await until(lambda: {state_of(orch, QWEN), state_of(orch, GEMMA)} == {State.UNLOADED})
            before = loads(sim)
            assert (await orch.ensure_loaded(QWEN)).state is State.READY  # loaded by us again
            assert loads(sim) == before + 1
        await backend.aclose()


async def test_asking_a_loaded_model_for_another_ttl_reports_the_one_lm_studio_holds(
    sim: Simulator, backend: LMStudioBackend
) -> None:
    async with open_orchestrator(backend, CFG) as orch:
        loaded = await orch.ensure_loaded(QWEN, ttl_s=600.0)
        assert loaded.ttl_s == 600.0
        kept = await orch.ensure_loaded(QWEN, ttl_s=3600.0)  # keep_loaded on a loaded model
        assert kept.ttl_s == 600.0  # LM Studio keeps the TTL it was loaded with
        [load] = sim.cli_runs("load")
        assert load.argv[load.argv.index("--ttl") + 1] == "600"
