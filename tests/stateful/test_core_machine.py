"""Level 1: Hypothesis drives the pure core (policy.decide) through arbitrary message orders.

Replies are plain integers here (the core only passes them through), so every
request can be checked to get exactly one answer.
"""

from __future__ import annotations

from typing import Any, assert_never

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from orchestrator import messages as m
from orchestrator.effects import (
    ArmTimer,
    CapacityChanged,
    HoldCapacity,
    ReleaseCapacity,
    SendReply,
    StartLoad,
    StartUnload,
    StartVerify,
    Timer,
    Transitioned,
)
from orchestrator.errors import BackendRejected, BackendUnreachable, CapacityExhausted
from orchestrator.lifecycle import State
from orchestrator.policy import Core, Limits, decide, new_core
from orchestrator.policy_core import owns
from orchestrator.status import ModelStatus, Owner

MAX_TTL = 1000.0
SETTLED = (State.READY, State.UNLOADED, State.BREAKER_OPEN)
WITHOUT_ROOM = (State.UNLOADED, State.BREAKER_OPEN)
HOLDING_ROOM = (State.VERIFYING, State.READY, State.EXPIRING)


class CoreMachine(RuleBasedStateMachine):
    # How many runs opened the breaker, so a test can show the breaker invariants do run.
    breaker_runs = 0

    # A low threshold and a short cooldown let the breaker open, and a probe follow, within a
    # run of 30 steps: the breaker's invariants are checked, not vacuously true.
    @initialize(
        threshold=st.integers(1, 3),
        cooldown=st.sampled_from([1.0, 10.0, 60.0, 200.0]),
        manage_foreign=st.booleans(),
    )
    def setup(self, threshold: int, cooldown: float, manage_foreign: bool) -> None:
        self.limits = Limits(
            default_ttl_s=100.0,
            max_ttl_s=MAX_TTL,
            breaker_threshold=threshold,
            breaker_cooldown_s=cooldown,
            manage_foreign=manage_foreign,
            backend_ttl=False,
        )
        self.core: Core = new_core("m", self.limits)
        self.now = 0.0
        self.next_id = 0
        self.sent: dict[int, bool] = {}  # request id -> is a lease
        self.answers: dict[int, list[Any]] = {}
        self.granted_leases = 0
        self.released = 0
        self.pending_load: int | None = None
        self.pending_verify: int | None = None
        self.pending_unload: int | None = None
        self.timers: dict[Timer, tuple[float, int] | None] = {
            Timer.IDLE: None,
            Timer.COOLDOWN: None,
            Timer.UNLOAD_RETRY: None,
        }
        self.entered_ready_from: list[State] = []
        # The capacity pool as the actor drives it: a slot is taken by a load that got
        # room (or by adoption) and given back only on ReleaseCapacity.
        self.holds_room = False
        self.opened_at: float | None = None  # when the breaker last opened
        self.last_op = 0  # the last load or unload started: each must be a new one
        self.last_generation = 0  # the last arming of a timer: each must be a new one

    def feed(self, msg: m.Message) -> None:
        self.core, effects = decide(self.core, msg, self.now)
        for fx in effects:
            match fx:
                case SendReply():
                    rid: int = fx.reply  # type: ignore[assignment]
                    self.answers.setdefault(rid, []).append(fx.result)
                    if fx.lease and isinstance(fx.result, ModelStatus):
                        self.granted_leases += 1
                case StartLoad():
                    assert self.pending_load is None, "two loads in flight"
                    assert self.pending_verify is None, "a load while verifying"
                    assert 0 < fx.ttl_s <= MAX_TTL
                    assert fx.op > self.last_op, "an operation number repeats"
                    self.pending_load = self.last_op = fx.op
                case StartVerify():
                    self.pending_verify = fx.op
                case StartUnload():
                    assert fx.op > self.last_op, "an operation number repeats"
                    assert self.core.owner is not Owner.FOREIGN, "unloads a foreign instance"
                    self.pending_unload = self.last_op = fx.op
                case ArmTimer():
                    if fx.deadline is not None:
                        assert fx.generation > self.last_generation, "a generation repeats"
                        self.last_generation = fx.generation
                    self.timers[fx.timer] = (
                        None if fx.deadline is None else (fx.deadline, fx.generation)
                    )
                case Transitioned():
                    if fx.dst is State.READY and fx.src is not State.READY:
                        self.entered_ready_from.append(fx.src)
                    if fx.dst is State.BREAKER_OPEN and fx.src is not State.BREAKER_OPEN:
                        if self.opened_at is None:
                            CoreMachine.breaker_runs += 1
                        self.opened_at = self.now
                case HoldCapacity():
                    self.holds_room = True  # a discovered instance takes its slot
                case ReleaseCapacity():
                    self.holds_room = False
                case CapacityChanged():
                    assert self.core.state is State.READY
                    assert self.core.in_flight == 0
                case _:
                    assert_never(fx)

    def request(self, lease: bool, ttl: float | None) -> None:
        rid = self.next_id
        self.next_id += 1
        self.sent[rid] = lease
        self.feed(m.EnsureLoaded(reply=rid, lease=lease, ttl_s=ttl, wait_s=30.0))  # type: ignore[arg-type]

    @rule(lease=st.booleans(), ttl=st.none() | st.sampled_from([5.0, 100.0, 1000.0]))
    def ensure_loaded(self, lease: bool, ttl: float | None) -> None:
        self.request(lease, ttl)

    @rule()
    def release(self) -> None:
        if self.granted_leases > self.released:
            self.released += 1
        self.feed(m.Release())  # an extra release must never drive in-flight negative

    @rule()
    def unload(self) -> None:
        rid = self.next_id
        self.next_id += 1
        self.sent[rid] = False
        self.feed(m.Unload(reply=rid))  # type: ignore[arg-type]

    @rule()
    def reset(self) -> None:
        rid = self.next_id
        self.next_id += 1
        self.sent[rid] = False
        self.feed(m.ResetBreaker(reply=rid))  # type: ignore[arg-type]

    @rule()
    def evict(self) -> None:
        self.feed(m.Evict())

    @rule()
    def discovered(self) -> None:
        self.feed(m.Discovered())

    @rule(stale=st.booleans())
    def lost(self, stale: bool) -> None:
        self.feed(m.Lost(generation=self.core.op - (1 if stale else 0)))

    @precondition(lambda self: self.pending_load is not None)
    @rule()
    def load_ok(self) -> None:
        op, self.pending_load = self.pending_load, None
        assert op is not None
        self.holds_room = True  # the load reserved its slot before loading
        self.feed(m.LoadOk(op=op))

    @precondition(lambda self: self.pending_load is not None)
    @rule(kind=st.sampled_from(["transient", "permanent", "capacity"]))
    def load_failed(self, kind: str) -> None:
        op, self.pending_load = self.pending_load, None
        assert op is not None
        error = {
            "transient": BackendUnreachable("refused"),
            "permanent": BackendRejected("no"),
            "capacity": CapacityExhausted("m", "full"),
        }[kind]
        self.feed(m.LoadFailed(op=op, error=error))

    @precondition(lambda self: self.core.state is State.UNLOADED and self.pending_load is None)
    @rule()
    def a_load_that_fails(self) -> None:
        # A request and its failure in one step, so that a run of 30 steps opens the breaker.
        self.request(False, None)
        self.load_failed("permanent")

    @precondition(lambda self: self.pending_verify is not None)
    @rule(ok=st.booleans())
    def verify_done(self, ok: bool) -> None:
        op, self.pending_verify = self.pending_verify, None
        assert op is not None
        if ok:
            self.feed(m.VerifyOk(op=op))
        else:
            self.feed(m.VerifyFailed(op=op, error=BackendRejected("absent")))

    @precondition(lambda self: self.pending_unload is not None)
    @rule(failed=st.booleans())
    def unload_done(self, failed: bool) -> None:
        op, self.pending_unload = self.pending_unload, None
        assert op is not None
        self.feed(m.UnloadDone(op=op, error=BackendUnreachable("down") if failed else None))

    @rule(dt=st.sampled_from([1.0, 10.0, 61.0, 150.0]))
    def time_passes(self, dt: float) -> None:
        self.now += dt
        for timer, armed in list(self.timers.items()):
            if armed is not None and armed[0] <= self.now:
                self.timers[timer] = None
                msg: m.Message
                match timer:
                    case Timer.IDLE:
                        msg = m.IdleTimeout(generation=armed[1])
                    case Timer.COOLDOWN:
                        msg = m.CooldownOver(generation=armed[1])
                    case Timer.UNLOAD_RETRY:
                        msg = m.UnloadRetry(generation=armed[1])
                    case _:
                        assert_never(timer)
                self.feed(msg)

    @invariant()
    def never_ready_without_verifying(self) -> None:
        assert set(self.entered_ready_from) <= {State.VERIFYING}

    @invariant()
    def in_flight_is_leases_held(self) -> None:
        assert self.core.in_flight >= 0
        assert self.core.in_flight == self.granted_leases - self.released

    @invariant()
    def every_request_is_answered_once_when_settled(self) -> None:
        assert all(len(a) == 1 for a in self.answers.values())
        if self.core.state in SETTLED:
            assert self.core.waiters == ()
            assert self.core.unload_waiters == ()
            assert set(self.answers) == set(self.sent)

    @invariant()
    def breaker_only_after_the_threshold(self) -> None:
        if self.core.state is State.BREAKER_OPEN:
            assert self.core.failures >= self.limits.breaker_threshold
            assert self.opened_at is not None
            # The cooldown counts from the failure that opened it, and its timer is armed.
            retry_at = self.opened_at + self.limits.breaker_cooldown_s
            assert self.core.retry_at == retry_at
            assert self.timers[Timer.COOLDOWN] == (retry_at, self.core.timer_generation)
        else:
            assert self.core.retry_at is None

    @invariant()
    def ttl_is_explicit_and_bounded(self) -> None:
        assert 0 < self.core.ttl_s <= MAX_TTL

    @invariant()
    def a_slot_is_held_exactly_while_the_backend_may_hold_the_model(self) -> None:
        if self.core.state in WITHOUT_ROOM:
            assert not self.holds_room, "settled without memory but the slot was kept"
        if self.core.state in HOLDING_ROOM:
            assert self.holds_room, "holds the model without a slot"

    @invariant()
    def ready_and_idle_always_has_an_expiry(self) -> None:
        # A foreign instance's TTL is the backend's: we arm none (issue 16).
        if self.core.state is State.READY and self.core.in_flight == 0 and owns(self.core):
            assert self.timers[Timer.IDLE] is not None

    @invariant()
    def a_failed_unload_is_retried(self) -> None:
        if self.core.state is State.EXPIRING and self.pending_unload is None:
            assert self.timers[Timer.UNLOAD_RETRY] is not None, "a failed unload is forgotten"


TestCoreMachine = CoreMachine.TestCase


def test_the_machine_opens_the_breaker() -> None:
    # Derandomized, so this shows the invariants above do run, without ever flaking.
    CoreMachine.breaker_runs = 0
    run_state_machine_as_test(CoreMachine, settings=settings(max_examples=100, derandomize=True))
    assert CoreMachine.breaker_runs >= 10
