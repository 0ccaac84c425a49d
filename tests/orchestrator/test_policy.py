"""The decisions the actor used to make itself, now the policy's: capacity, ownership, breaker."""

from __future__ import annotations

from typing import Any

import pytest
import trio
from msgspec import structs

from orchestrator import messages as m
from orchestrator.config import Config
from orchestrator.effects import (
    ArmTimer,
    BreakerChange,
    CapacityChanged,
    Effect,
    ReleaseCapacity,
    StartLoad,
    StartUnload,
    StartVerify,
    Timer,
    Transitioned,
)
from orchestrator.errors import BackendRejected, CapacityExhausted
from orchestrator.lifecycle import Input, State
from orchestrator.policy import Core, Limits, decide, new_core, snapshot, unload_on_stop
from orchestrator.status import Owner

LIMITS = Limits.from_config(Config(breaker_threshold=4, breaker_cooldown_s=10.0), backend_ttl=False)


def _reply() -> Any:
    send, _ = trio.open_memory_channel[m.Reply](1)
    return send


def _feed(core: Core, msg: m.Message, now: float = 0.0) -> tuple[Core, list[Effect]]:
    return decide(core, msg, now)


def _op(effects: list[Effect], kind: type[StartLoad | StartVerify | StartUnload]) -> int:
    return next(fx.op for fx in effects if isinstance(fx, kind))


def _loading() -> tuple[Core, int]:
    core, fx = _feed(new_core("m", LIMITS), m.EnsureLoaded(reply=_reply()))
    return core, _op(fx, StartLoad)


def _ready(*, adopted: bool) -> Core:
    core, op = _loading()
    core, fx = _feed(core, m.LoadOk(op=op, adopted=adopted))
    core, fx = _feed(core, m.VerifyOk(op=_op(fx, StartVerify)))
    assert core.state is State.READY
    return core


def _breakers(effects: list[Effect]) -> list[BreakerChange | None]:
    return [fx.breaker for fx in effects if isinstance(fx, Transitioned)]


def _fail_load(core: Core, error: Exception) -> tuple[Core, list[Effect]]:
    """Request a load of an UNLOADED model and fail it with ``error``."""
    core, fx = _feed(core, m.EnsureLoaded(reply=_reply()))
    return _feed(core, m.LoadFailed(op=_op(fx, StartLoad), error=error))  # type: ignore[arg-type]


def test_a_capacity_failure_never_feeds_the_breaker() -> None:
    core = new_core("m", LIMITS)
    for _ in range(LIMITS.breaker_threshold + 1):
        core, _ = _fail_load(core, CapacityExhausted("m", "full"))
    assert core.state is State.UNLOADED
    assert core.failures == 0
    core, _ = _fail_load(core, BackendRejected("no"))
    assert core.failures == 1


def test_only_a_load_of_ours_is_unloaded_on_stop() -> None:
    assert unload_on_stop(_ready(adopted=False))
    assert not unload_on_stop(_ready(adopted=True))
    loading, _ = _loading()
    assert unload_on_stop(loading)  # the load may land after we stop
    core, fx = _feed(_ready(adopted=False), m.Unload(reply=_reply()))
    core, fx = _feed(core, m.UnloadDone(op=_op(fx, StartUnload)))
    assert core.state is State.UNLOADED
    assert core.owner is None
    assert not unload_on_stop(core)


def test_the_slot_is_released_when_settled_without_memory_and_kept_across_a_reload() -> None:
    failed, fx = _fail_load(new_core("m", LIMITS), BackendRejected("no"))
    assert failed.state is State.UNLOADED
    assert fx.count(ReleaseCapacity()) == 1
    core, fx = _feed(_ready(adopted=False), m.Unload(reply=_reply()))
    core, _ = _feed(core, m.EnsureLoaded(reply=_reply()))  # arrives while expiring
    core, fx = _feed(core, m.UnloadDone(op=_op(fx, StartUnload)))
    assert core.state is State.LOADING  # straight back to loading: the slot stays ours
    assert ReleaseCapacity() not in fx


def test_becoming_idle_wakes_loads_waiting_for_room() -> None:
    core, op = _loading()
    core, fx = _feed(core, m.LoadOk(op=op))
    core, fx = _feed(core, m.VerifyOk(op=_op(fx, StartVerify)))
    assert CapacityChanged() in fx  # READY with nothing in flight
    core, fx = _feed(core, m.EnsureLoaded(reply=_reply(), lease=True))
    assert CapacityChanged() not in fx  # leased: not a candidate
    core, fx = _feed(core, m.Release())
    assert CapacityChanged() in fx


def test_the_breaker_events_follow_the_breaker() -> None:
    core = new_core("m", LIMITS)
    changes: list[BreakerChange | None] = []
    for _ in range(LIMITS.breaker_threshold):
        core, fx = _fail_load(core, BackendRejected("no"))
        changes += _breakers(fx)
    assert core.state is State.BREAKER_OPEN
    # Below the threshold a failure changes no breaker; the one that reaches it opens it.
    assert changes == [None, None, None, BreakerChange.OPENED]
    assert core.breaker_opened
    core, fx = _feed(core, m.EnsureLoaded(reply=_reply()))  # fails fast: nothing changes
    assert _breakers(fx) == [None]
    core, fx = _feed(core, m.CooldownOver(generation=core.timer_generation), now=10.0)
    assert _breakers(fx) == [BreakerChange.HALF_OPEN]
    assert core.breaker_opened  # still: only a success closes it
    core, fx = _feed(core, m.EnsureLoaded(reply=_reply()))
    assert _breakers(fx) == [None]  # the probe starts: not closed yet
    core, fx = _feed(core, m.LoadOk(op=_op(fx, StartLoad)))
    assert _breakers(fx) == [None]
    core, fx = _feed(core, m.VerifyOk(op=_op(fx, StartVerify)))
    assert _breakers(fx) == [BreakerChange.CLOSED]
    assert not core.breaker_opened
    core, fx = _feed(new_core("m", LIMITS), m.ResetBreaker(reply=_reply()))
    assert _breakers(fx) == [BreakerChange.RESET]  # logged even with nothing to close


def test_a_first_success_closes_no_breaker() -> None:
    core, op = _loading()
    core, fx = _feed(core, m.LoadOk(op=op))
    core, fx = _feed(core, m.VerifyOk(op=_op(fx, StartVerify)))
    assert core.state is State.READY
    assert _breakers(fx) == [None]


@pytest.mark.parametrize("state", [State.UNLOADED, State.BREAKER_OPEN])
def test_nothing_is_unloaded_on_stop_once_settled_without_memory(state: State) -> None:
    # Whoever loaded it last: a model that failed verification or was unloaded holds nothing.
    core = structs.replace(new_core("m", LIMITS), state=state, owner=Owner.OURS)
    assert not unload_on_stop(core)


def test_a_timer_that_can_no_longer_matter_is_disarmed() -> None:
    core = new_core("m", LIMITS)
    for _ in range(LIMITS.breaker_threshold):
        core, _ = _fail_load(core, BackendRejected("no"))
    core, fx = _feed(core, m.ResetBreaker(reply=_reply()))
    assert ArmTimer(timer=Timer.COOLDOWN, deadline=None, generation=core.timer_generation) in fx
    ready = _ready(adopted=False)
    core, fx = _feed(ready, m.Lost(generation=ready.op))
    assert core.state is State.UNLOADED
    assert ArmTimer(timer=Timer.IDLE, deadline=None, generation=core.timer_generation) in fx


def test_the_status_shows_expiry_only_when_idle_and_retry_only_while_open() -> None:
    fresh = snapshot(new_core("m", LIMITS), 0.0)
    assert (fresh.identifier, fresh.generation, fresh.expires_in_s) == ("m", 0, None)
    assert snapshot(new_core("m", LIMITS, identifier="m:2"), 0.0).identifier == "m:2"
    ready = structs.replace(_ready(adopted=False), idle_deadline=100.0)
    assert ready.op == 1  # the first load is generation 1
    assert snapshot(ready, 40.0).expires_in_s == 60.0
    assert snapshot(ready, 140.0).expires_in_s == 0.0  # overdue: never negative
    assert snapshot(structs.replace(ready, in_flight=1), 40.0).expires_in_s is None
    expiring = structs.replace(ready, state=State.EXPIRING)
    assert snapshot(expiring, 40.0).expires_in_s is None
    assert snapshot(ready, 40.0).retry_after_s is None
    opened = structs.replace(new_core("m", LIMITS), state=State.BREAKER_OPEN, retry_at=30.0)
    assert snapshot(opened, 10.0).retry_after_s == 20.0
    assert snapshot(opened, 50.0).retry_after_s == 0.0
    assert snapshot(opened, 10.0).expires_in_s is None
    unloaded = structs.replace(opened, state=State.UNLOADED)
    assert snapshot(unloaded, 10.0).retry_after_s is None


def test_the_idle_timeout_and_an_unload_are_told_apart() -> None:
    ready = _ready(adopted=False)
    _, fx = _feed(ready, m.IdleTimeout(generation=ready.timer_generation))
    assert [e.input for e in fx if isinstance(e, Transitioned)] == [Input.IDLE_TIMEOUT]
    assert StartUnload(op=ready.op + 1, reason="idle") in fx
    _, fx = _feed(ready, m.Evict())
    assert [e.input for e in fx if isinstance(e, Transitioned)] == [Input.UNLOAD_REQUESTED]


def test_a_message_outside_the_union_is_a_bug_not_ignored() -> None:
    with pytest.raises(AssertionError):
        decide(new_core("m", LIMITS), object(), 0.0)  # type: ignore[arg-type]


def test_the_load_asks_for_the_context_length_the_request_named() -> None:
    _, fx = _feed(new_core("m", LIMITS), m.EnsureLoaded(reply=_reply(), context_length=4096))
    [load] = [e for e in fx if isinstance(e, StartLoad)]
    assert load.context_length == 4096
    _, fx = _feed(new_core("m", LIMITS), m.EnsureLoaded(reply=_reply()))
    [load] = [e for e in fx if isinstance(e, StartLoad)]
    assert load.context_length is None  # the backend's default


def _ready_with_context(asked: int | None, loaded: int | None) -> Core:
    core, fx = _feed(new_core("m", LIMITS), m.EnsureLoaded(reply=_reply(), context_length=asked))
    core, fx = _feed(core, m.LoadOk(op=_op(fx, StartLoad)))
    core, _ = _feed(core, m.VerifyOk(op=_op(fx, StartVerify), context_length=loaded))
    assert core.state is State.READY
    return core


def test_status_shows_the_loaded_context_and_warns_when_it_was_fitted_down() -> None:
    """F5: LM Studio may load less context than asked, silently; the status says so."""
    fitted = snapshot(_ready_with_context(16384, 4096), 0.0)
    assert fitted.context_length == 4096
    assert fitted.warning is not None
    assert "a context of 4096 tokens, less than the 16384 asked for" in fitted.warning
    for asked, loaded in ((4096, 4096), (None, 4096), (4096, None), (4096, 8192)):
        status = snapshot(_ready_with_context(asked, loaded), 0.0)
        assert (status.context_length, status.warning) == (loaded, None)


def test_a_model_that_holds_no_memory_shows_no_loaded_context() -> None:
    core = _ready_with_context(16384, 4096)
    lost, _ = _feed(core, m.Lost(generation=core.op, reason="gone"))
    assert (snapshot(lost, 0.0).context_length, snapshot(lost, 0.0).warning) == (None, None)
    core, fx = _feed(core, m.Unload(reply=_reply()))
    core, _ = _feed(core, m.UnloadDone(op=_op(fx, StartUnload)))
    assert core.state is State.UNLOADED
    assert (snapshot(core, 0.0).context_length, snapshot(core, 0.0).warning) == (None, None)


def test_a_new_load_forgets_the_last_loaded_context() -> None:
    core = _ready_with_context(16384, 4096)
    lost, _ = _feed(core, m.Lost(generation=core.op, reason="gone"))
    found, _ = _feed(lost, m.Discovered())
    assert (found.asked_context, found.context_length) == (None, None)
    again, _ = _feed(lost, m.EnsureLoaded(reply=_reply(), context_length=8192))
    assert (again.asked_context, again.context_length) == (8192, None)
    assert snapshot(again, 0.0).context_length is None
