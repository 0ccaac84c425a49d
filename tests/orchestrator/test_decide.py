"""``decide()`` on messages that arrive late, twice, or in the wrong state, and every unload path.

A report (load, verify, unload) names the operation it reports on, and a timer
names the generation it was armed as; anything else is stale and must change
nothing. Replies are plain integers here: the policy only passes them through.
"""

from __future__ import annotations

from typing import Any

import pytest
from msgspec import structs

from orchestrator import messages as m
from orchestrator.config import Config
from orchestrator.effects import (
    ArmTimer,
    Effect,
    ReleaseCapacity,
    SendReply,
    StartLoad,
    StartUnload,
    StartVerify,
    Timer,
    Transitioned,
)
from orchestrator.errors import (
    BackendRejected,
    BackendUnreachable,
    BreakerOpen,
    ModelBusy,
    NotOwned,
)
from orchestrator.lifecycle import Input, State
from orchestrator.policy import Core, Limits, decide, new_core
from orchestrator.status import ModelStatus, Owner

LIMITS = Limits.from_config(
    Config(default_ttl_s=100.0, breaker_threshold=2, breaker_cooldown_s=60.0), backend_ttl=False
)
OP, GEN = 5, 9  # distinct, so a check against the wrong counter shows
ERROR = BackendRejected("no")


def reply(n: int) -> Any:
    return n


def core_in(state: State, *, in_flight: int = 0) -> Core:
    return structs.replace(
        new_core("m", LIMITS),
        state=state,
        op=OP,
        timer_generation=GEN,
        in_flight=in_flight,
        failures=LIMITS.breaker_threshold if state is State.BREAKER_OPEN else 0,
        owner=None if state in (State.UNLOADED, State.BREAKER_OPEN) else Owner.OURS,
    )


def reports(op: int, gen: int) -> list[m.Message]:
    return [
        m.LoadOk(op=op),
        m.LoadFailed(op=op, error=ERROR),
        m.VerifyOk(op=op),
        m.VerifyFailed(op=op, error=ERROR),
        m.UnloadDone(op=op),
        m.Lost(generation=op),
        m.IdleTimeout(generation=gen),
        m.CooldownOver(generation=gen),
    ]


# The one state (and in-flight count) in which each message is current.
ACCEPTED_IN = {
    m.LoadOk: (State.LOADING,),
    m.LoadFailed: (State.LOADING,),
    m.VerifyOk: (State.VERIFYING,),
    m.VerifyFailed: (State.VERIFYING,),
    m.UnloadDone: (State.EXPIRING,),
    m.Lost: (State.READY, State.EXPIRING),
    m.IdleTimeout: (State.READY,),
    m.CooldownOver: (State.BREAKER_OPEN,),
}


@pytest.mark.parametrize("state", list(State))
@pytest.mark.parametrize("in_flight", [0, 1])
@pytest.mark.parametrize(("op", "gen"), [(OP - 1, GEN - 1), (OP + 1, GEN + 1), (OP, GEN)])
def test_a_report_or_timer_is_acted_on_only_when_current(
    state: State, in_flight: int, op: int, gen: int
) -> None:
    core = core_in(state, in_flight=in_flight)
    for msg in reports(op, gen):
        new, fx = decide(core, msg, 50.0)
        current = (op, gen) == (OP, GEN) and state in ACCEPTED_IN[type(msg)]
        if isinstance(msg, m.IdleTimeout):
            current = current and in_flight == 0  # a lease arrived after the timer fired
        if current:
            assert new.state is not state, msg
            assert any(isinstance(e, Transitioned) for e in fx)
        else:
            assert (new, fx) == (core, []), msg


@pytest.mark.parametrize("state", list(State))
@pytest.mark.parametrize("in_flight", [0, 1])
def test_evict_and_discovered_act_only_where_they_apply(state: State, in_flight: int) -> None:
    core = core_in(state, in_flight=in_flight)
    new, fx = decide(core, m.Evict(), 0.0)
    if state is State.READY and in_flight == 0:
        assert new.state is State.EXPIRING
        assert StartUnload(op=OP + 1, reason="evicted") in fx
    else:
        assert (new, fx) == (core, [])
    new, fx = decide(core, m.Discovered(), 0.0)
    if state is State.UNLOADED:
        assert new.state is State.VERIFYING
        assert StartVerify(op=OP + 1) in fx
    else:
        assert (new, fx) == (core, [])


def ops(fx: list[Effect]) -> list[int]:
    return [e.op for e in fx if isinstance(e, StartLoad | StartVerify | StartUnload)]


def test_every_load_and_unload_is_a_new_operation_so_a_late_report_is_ignored() -> None:
    core = new_core("m", LIMITS)
    core, fx = decide(core, m.EnsureLoaded(reply=reply(1)), 0.0)
    first = ops(fx)[0]
    core, _ = decide(core, m.LoadFailed(op=first, error=BackendUnreachable("x")), 1.0)
    core, fx = decide(core, m.EnsureLoaded(reply=reply(2)), 2.0)
    second = ops(fx)[0]
    assert second > first
    late, fx = decide(core, m.LoadOk(op=first), 3.0)
    assert (late, fx) == (core, [])
    core, fx = decide(core, m.LoadOk(op=second), 3.0)
    assert ops(fx) == [second]  # verification reports on the same operation
    core, _ = decide(core, m.VerifyOk(op=second), 4.0)
    core, fx = decide(core, m.Unload(reply=reply(3)), 5.0)
    unload = ops(fx)[0]
    assert unload > second
    assert decide(core, m.UnloadDone(op=second), 6.0) == (core, [])


def arms(fx: list[Effect]) -> list[tuple[Timer, float | None, int]]:
    return [(e.timer, e.deadline, e.generation) for e in fx if isinstance(e, ArmTimer)]


def test_every_arming_of_a_timer_is_a_new_generation_so_a_late_firing_is_ignored() -> None:
    core = structs.replace(new_core("m", LIMITS), state=State.READY, owner=Owner.OURS)
    core, fx = decide(core, m.EnsureLoaded(reply=reply(1)), 0.0)
    [(_, deadline, first)] = arms(fx)
    assert deadline == 100.0
    core, _ = decide(core, m.EnsureLoaded(reply=reply(2), lease=True), 10.0)
    core, fx = decide(core, m.Release(), 20.0)
    [(_, deadline, second)] = arms(fx)
    assert (deadline, second) == (120.0, first + 1)
    assert decide(core, m.IdleTimeout(generation=first), 100.0) == (core, [])
    core, fx = decide(core, m.IdleTimeout(generation=second), 120.0)
    assert core.state is State.EXPIRING


def fail_load(core: Core, now: float) -> tuple[Core, list[Effect]]:
    core, fx = decide(core, m.EnsureLoaded(reply=reply(0)), now)
    return decide(core, m.LoadFailed(op=ops(fx)[0], error=ERROR), now)


def test_a_failed_probe_reopens_the_breaker_with_a_cooldown_from_its_own_failure() -> None:
    core = new_core("m", LIMITS)
    core, fx = fail_load(core, 0.0)
    assert core.state is State.UNLOADED
    assert core.retry_at is None
    assert arms(fx) == []  # below the threshold: no cooldown
    core, fx = fail_load(core, 5.0)
    assert core.state is State.BREAKER_OPEN
    assert arms(fx) == [(Timer.COOLDOWN, 65.0, core.timer_generation)]
    assert core.retry_at == 65.0
    core, fx = decide(core, m.EnsureLoaded(reply=reply(1)), 20.0)
    [answer] = [e.result for e in fx if isinstance(e, SendReply)]
    assert isinstance(answer, BreakerOpen)
    assert answer.retry_after_s == 45.0
    core, _ = decide(core, m.CooldownOver(generation=core.timer_generation), 65.0)
    assert core.state is State.UNLOADED
    core, fx = fail_load(core, 80.0)  # the probe fails: open again at once, for a full cooldown
    assert core.state is State.BREAKER_OPEN
    assert arms(fx) == [(Timer.COOLDOWN, 140.0, core.timer_generation)]
    assert core.retry_at == 140.0


def unload_answers(core: Core, now: float = 0.0) -> tuple[Core, list[Effect], list[object]]:
    unload = reply(7)
    core, fx = decide(core, m.Unload(reply=unload), now)
    return core, fx, [e.result for e in fx if isinstance(e, SendReply) and e.reply is unload]


@pytest.mark.parametrize("state", [State.UNLOADED, State.BREAKER_OPEN])
def test_an_unload_of_a_model_holding_nothing_is_answered_at_once(state: State) -> None:
    core, fx, answers = unload_answers(core_in(state))
    assert core.state is state
    assert [(e.src, e.input) for e in fx if isinstance(e, Transitioned)] == [
        (state, Input.UNLOAD_REQUESTED)  # counted, though nothing changes
    ]
    assert len(answers) == 1
    assert isinstance(answers[0], ModelStatus)
    assert answers[0].state is state


@pytest.mark.parametrize(
    ("state", "in_flight"), [(State.LOADING, 0), (State.VERIFYING, 0), (State.READY, 1)]
)
def test_an_unload_of_a_model_in_use_or_in_transition_is_refused_as_busy(
    state: State, in_flight: int
) -> None:
    core = core_in(state, in_flight=in_flight)
    new, _, answers = unload_answers(core)
    assert new == core
    assert len(answers) == 1
    assert isinstance(answers[0], ModelBusy)


@pytest.mark.parametrize("error", [None, BackendUnreachable("down")])
def test_an_unload_of_a_ready_or_expiring_model_is_answered_when_it_is_done(
    error: BackendUnreachable | None,
) -> None:
    core, fx, answers = unload_answers(core_in(State.READY))
    assert core.state is State.EXPIRING
    assert answers == []
    assert ops(fx) == [OP + 1]
    assert ArmTimer(timer=Timer.IDLE, deadline=None, generation=GEN) in fx  # no expiry now
    core, fx, answers = unload_answers(core, 1.0)  # a second unload joins the first
    assert core.state is State.EXPIRING
    assert (answers, ops(fx)) == ([], [])
    core, fx = decide(core, m.UnloadDone(op=OP + 1, error=error), 2.0)
    # A failed unload keeps the slot (EXPIRING) and is retried; whoever asked learns now.
    assert core.state is (State.UNLOADED if error is None else State.EXPIRING)
    results = [e.result for e in fx if isinstance(e, SendReply)]
    assert len(results) == 2
    for result in results:
        if error is None:
            assert isinstance(result, ModelStatus)
            assert result.state is State.UNLOADED
        else:
            assert result is error


def test_a_failed_unload_keeps_its_slot_and_is_retried_with_a_doubling_backoff() -> None:
    core, _, _ = unload_answers(core_in(State.READY))
    delays = []
    for attempt in range(7):
        now = 10.0 * attempt
        core, fx = decide(core, m.UnloadDone(op=core.op, error=BackendUnreachable("x")), now)
        assert core.state is State.EXPIRING
        assert not any(isinstance(e, ReleaseCapacity) for e in fx)
        [(timer, deadline, gen)] = arms(fx)
        assert timer is Timer.UNLOAD_RETRY
        assert deadline is not None
        delays.append(deadline - now)
        assert decide(core, m.UnloadRetry(generation=gen - 1), now) == (core, [])
        core, fx = decide(core, m.UnloadRetry(generation=gen), deadline)
        assert [e.reason for e in fx if isinstance(e, StartUnload)] == ["retry"]
    assert delays == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
    core, fx = decide(core, m.UnloadDone(op=core.op), 100.0)
    assert core.state is State.UNLOADED
    assert ReleaseCapacity() in fx


def test_a_failed_verification_of_our_load_is_cleaned_up_before_its_slot_is_freed() -> None:
    core = structs.replace(core_in(State.VERIFYING), failures=LIMITS.breaker_threshold - 1)
    core, fx = decide(core, m.VerifyFailed(op=OP, error=ERROR), 1.0)
    assert core.state is State.EXPIRING  # the backend may still be loading it
    assert [e.reason for e in fx if isinstance(e, StartUnload)] == ["verify_failed"]
    assert not any(isinstance(e, ReleaseCapacity) for e in fx)
    assert core.owner is Owner.OURS  # stopping now still unloads it
    core, fx = decide(core, m.UnloadDone(op=core.op), 2.0)
    assert core.state is State.BREAKER_OPEN  # this failure reached the threshold
    assert core.owner is None
    assert ReleaseCapacity() in fx
    assert arms(fx)[-1][:2] == (Timer.COOLDOWN, 62.0)


def test_an_unload_of_a_foreign_instance_being_verified_says_whose_it_is() -> None:
    core = structs.replace(core_in(State.VERIFYING), owner=Owner.FOREIGN)
    new, _, answers = unload_answers(core)
    assert new == core
    [answer] = answers
    assert isinstance(answer, NotOwned)  # not ModelBusy: waiting would not help


def test_a_failed_verification_of_a_foreign_instance_unloads_nothing() -> None:
    core = structs.replace(core_in(State.VERIFYING), owner=Owner.FOREIGN)
    core, fx = decide(core, m.VerifyFailed(op=OP, error=ERROR), 1.0)
    assert core.state is State.UNLOADED
    assert core.failures == 0  # not the model's own failure
    assert not any(isinstance(e, StartUnload) for e in fx)


@pytest.mark.parametrize("owner", [Owner.FOREIGN, Owner.ADOPTED])
def test_a_foreign_instance_is_never_unloaded_unless_adopted(owner: Owner) -> None:
    core = structs.replace(core_in(State.READY), owner=owner)
    ours = owner is Owner.ADOPTED
    new, _ = decide(core, m.Evict(), 0.0)
    assert (new.state is State.EXPIRING) is ours
    new, _ = decide(core, m.IdleTimeout(generation=GEN), 0.0)
    assert (new.state is State.EXPIRING) is ours
    new, _, answers = unload_answers(core)
    assert (new.state is State.EXPIRING) is ours
    if not ours:
        [answer] = answers
        assert isinstance(answer, NotOwned)
        assert "another client" in str(answer)
        assert "manage_foreign" in str(answer)


def test_the_ttl_of_a_loaded_model_is_the_one_the_backend_holds() -> None:
    limits = structs.replace(LIMITS, backend_ttl=True)
    core = structs.replace(core_in(State.READY), limits=limits, ttl_s=600.0)
    core, fx = decide(core, m.EnsureLoaded(reply=reply(1), ttl_s=3600.0), 0.0)
    [status] = [e.result for e in fx if isinstance(e, SendReply)]
    assert isinstance(status, ModelStatus)
    assert status.ttl_s == 600.0  # LM Studio keeps the TTL it was loaded with
    core, _ = decide(core, m.TtlObserved(ttl_s=300.0), 1.0)
    assert core.ttl_s == 300.0
