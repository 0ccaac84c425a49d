"""``decide()`` rule by rule: whose TTL holds, who owns a found instance, failed unloads.

Each test names the behaviour a user sees (the TTL reported, what is unloaded at
stop, when a failed unload is tried again); several were found by the mutation
tester (``python -m mutation``) as rules nothing pinned down.
"""

from __future__ import annotations

from typing import Any

import pytest
from msgspec import structs

from orchestrator import messages as m
from orchestrator.config import Config
from orchestrator.effects import (
    ArmTimer,
    CapacityChanged,
    Effect,
    StartLoad,
    StartUnload,
    StartVerify,
    Timer,
)
from orchestrator.errors import BackendRejected
from orchestrator.lifecycle import State
from orchestrator.policy import Core, Limits, decide, new_core, unload_on_stop
from orchestrator.status import Owner

ERROR = BackendRejected("the unload failed")


def _limits(*, backend_ttl: bool = False, manage_foreign: bool = False) -> Limits:
    config = Config(default_ttl_s=100.0, manage_foreign=manage_foreign)
    return Limits.from_config(config, backend_ttl=backend_ttl)


def _reply() -> Any:
    return object()  # the policy only passes replies through


def _feed(core: Core, msg: m.Message, now: float = 0.0) -> tuple[Core, list[Effect]]:
    return decide(core, msg, now)


def _op(fx: list[Effect], kind: type[StartLoad] | type[StartVerify] | type[StartUnload]) -> int:
    [effect] = [e for e in fx if isinstance(e, kind)]
    return effect.op


def _loading(limits: Limits) -> Core:
    core, _ = _feed(new_core("m", limits), m.EnsureLoaded(reply=_reply()))
    assert core.state is State.LOADING
    return core


def _ready(limits: Limits) -> Core:
    core, fx = _feed(new_core("m", limits), m.EnsureLoaded(reply=_reply()))
    core, fx = _feed(core, m.LoadOk(op=_op(fx, StartLoad)))
    assert core.state is State.VERIFYING
    core, _ = _feed(core, m.VerifyOk(op=_op(fx, StartVerify)))
    assert core.state is State.READY
    return core


def _found(limits: Limits) -> Core:
    core, fx = _feed(new_core("m", limits), m.Discovered())
    core, _ = _feed(core, m.VerifyOk(op=_op(fx, StartVerify)))
    assert core.state is State.READY
    return core


# -- whose TTL holds --


@pytest.mark.parametrize("state", ["loading", "verifying", "ready"])
def test_a_backend_that_holds_the_ttl_keeps_the_one_it_was_loaded_with(state: str) -> None:
    """LM Studio enforces the TTL given at load: a later request's TTL is not reported."""
    limits = _limits(backend_ttl=True)
    core = _loading(limits) if state == "loading" else _ready(limits)
    if state == "verifying":
        core = structs.replace(core, state=State.VERIFYING)
    asked, _ = _feed(core, m.EnsureLoaded(reply=_reply(), ttl_s=7.0))
    assert asked.ttl_s == 100.0


def test_a_backend_that_holds_the_ttl_takes_a_new_one_for_its_next_load() -> None:
    core, fx = _feed(
        new_core("m", _limits(backend_ttl=True)), m.EnsureLoaded(reply=_reply(), ttl_s=7.0)
    )
    assert core.ttl_s == 7.0
    [load] = [e for e in fx if isinstance(e, StartLoad)]
    assert load.ttl_s == 7.0


def test_our_own_ttl_changes_at_once_unless_the_instance_is_foreign() -> None:
    """llama.cpp: our idle timer is the TTL, except on an instance another client loaded."""
    ours = _ready(_limits())
    asked, _ = _feed(ours, m.EnsureLoaded(reply=_reply(), ttl_s=7.0))
    assert asked.ttl_s == 7.0
    foreign = _found(_limits())
    assert foreign.owner is Owner.FOREIGN
    asked, _ = _feed(foreign, m.EnsureLoaded(reply=_reply(), ttl_s=7.0))
    assert asked.ttl_s == 100.0  # whoever loaded it decides when it goes
    adopted = _found(_limits(manage_foreign=True))
    asked, _ = _feed(adopted, m.EnsureLoaded(reply=_reply(), ttl_s=7.0))
    assert asked.ttl_s == 7.0  # managed by choice: ours to time


def test_the_ttl_a_listing_shows_is_taken_only_for_a_ready_model_of_a_ttl_holding_backend() -> None:
    held = _ready(_limits(backend_ttl=True))
    assert _feed(held, m.TtlObserved(ttl_s=42.0))[0].ttl_s == 42.0
    ours = _ready(_limits())  # our idle timer is the truth: a listing cannot change it
    assert _feed(ours, m.TtlObserved(ttl_s=42.0))[0].ttl_s == 100.0
    loading = _loading(_limits(backend_ttl=True))  # not settled: the next listing tells
    assert _feed(loading, m.TtlObserved(ttl_s=42.0))[0].ttl_s == 100.0


# -- who owns a found instance --


def test_a_found_instance_is_foreign_or_adopted_never_ours() -> None:
    """Only what we loaded is ours: it alone is unloaded when the server stops."""
    foreign = _found(_limits())
    adopted = _found(_limits(manage_foreign=True))
    ours = _ready(_limits())

    assert (foreign.owner, adopted.owner, ours.owner) == (Owner.FOREIGN, Owner.ADOPTED, Owner.OURS)
    assert [unload_on_stop(c) for c in (foreign, adopted, ours)] == [False, False, True]


def test_a_foreign_model_becoming_idle_wakes_the_waiting_loads() -> None:
    """No idle timer of ours, but the scheduler and the pool re-plan when it goes idle."""
    core, _ = _feed(_found(_limits()), m.EnsureLoaded(reply=_reply(), lease=True))
    assert core.in_flight == 1
    idle, fx = _feed(core, m.Release(), 5.0)
    assert idle.in_flight == 0
    assert CapacityChanged() in fx
    assert not [e for e in fx if isinstance(e, ArmTimer) and e.deadline is not None]


# -- failed unloads --


def _failed_unload(core: Core, fx: list[Effect], now: float) -> tuple[Core, list[Effect], int]:
    op = _op(fx, StartUnload)
    core, fx = _feed(core, m.UnloadDone(op=op, error=ERROR), now)
    assert core.state is State.EXPIRING  # the slot is kept until the backend confirms
    return core, fx, op


def _retry_at(fx: list[Effect]) -> float:
    [timer] = [e for e in fx if isinstance(e, ArmTimer) and e.timer is Timer.UNLOAD_RETRY]
    assert timer.deadline is not None
    return timer.deadline


def test_a_failed_cleanup_after_a_failed_verification_is_retried_after_the_first_backoff() -> None:
    core, fx = _feed(new_core("m", _limits()), m.EnsureLoaded(reply=_reply()))
    core, fx = _feed(core, m.LoadOk(op=_op(fx, StartLoad)))
    core, fx = _feed(core, m.VerifyFailed(op=_op(fx, StartVerify), error=ERROR), 10.0)
    assert core.state is State.EXPIRING
    core, fx, _ = _failed_unload(core, fx, 20.0)
    assert _retry_at(fx) == 20.0 + core.limits.unload_retry_initial_s


def test_each_retry_is_a_new_unload_and_the_failed_one_report_is_stale() -> None:
    core, fx = _feed(_ready(_limits()), m.Unload(reply=_reply()), 10.0)
    core, fx, failed_op = _failed_unload(core, fx, 10.0)
    assert _retry_at(fx) == 10.0 + core.limits.unload_retry_initial_s
    core, fx = _feed(core, m.UnloadRetry(generation=core.timer_generation), 11.0)
    retry_op = _op(fx, StartUnload)
    assert retry_op == failed_op + 1
    late, late_fx = _feed(core, m.UnloadDone(op=failed_op), 11.5)  # the first attempt's report
    assert (late, late_fx) == (core, [])
    core, fx, _ = _failed_unload(core, fx, 12.0)
    assert _retry_at(fx) == 12.0 + 2 * core.limits.unload_retry_initial_s  # doubling


def test_settling_after_failed_unloads_cancels_the_pending_retry() -> None:
    core, fx = _feed(_ready(_limits()), m.Unload(reply=_reply()), 10.0)
    core, fx, _ = _failed_unload(core, fx, 10.0)
    gone, fx = _feed(core, m.Lost(generation=core.op, reason="gone"), 10.5)  # it went anyway
    assert gone.state is State.UNLOADED
    cancelled = ArmTimer(timer=Timer.UNLOAD_RETRY, deadline=None, generation=gone.timer_generation)
    assert cancelled in fx
