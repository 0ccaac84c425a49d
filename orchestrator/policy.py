"""The pure policy: ``decide(core, message, now) -> (core, effects)``.

It owns a model's extended state (:class:`Core`): waiters, in-flight leases,
TTL, failure count, timer generations. It never does I/O, never reads a clock
(``now`` comes in) and changes :class:`~orchestrator.lifecycle.State` only
through :func:`~orchestrator.lifecycle.next_state`. The actor applies the
returned effects.

Rules it implements (DESIGN.md §3): one load in flight, every request during a
load joins it and gets its outcome; every settled transition answers every
waiter; idle TTL counts from the end of the last lease while nothing is in
flight; a failure that reaches the threshold opens the breaker, and while open
requests fail fast; after the cooldown the next load is the one probe (the
failure count stays at the threshold, so a failed probe reopens at once).
"""

from __future__ import annotations

from msgspec import Struct, structs

from orchestrator import messages as m
from orchestrator.effects import (
    ArmTimer,
    Effect,
    SendReply,
    StartLoad,
    StartUnload,
    StartVerify,
    Timer,
    Transitioned,
)
from orchestrator.errors import BreakerOpen, ModelBusy, OrchestratorError
from orchestrator.lifecycle import Input, State, next_state
from orchestrator.status import ModelStatus

__all__ = ["Core", "Limits", "decide", "new_core", "snapshot"]


class Limits(Struct, frozen=True, kw_only=True):
    """The policy numbers a core needs (taken from ``Config``)."""

    default_ttl_s: float = 600.0
    max_ttl_s: float = 3600.0
    breaker_threshold: int = 5
    breaker_cooldown_s: float = 60.0


class Core(Struct, frozen=True, kw_only=True):
    """A model's whole state: lifecycle state plus extended state."""

    model: str
    identifier: str
    limits: Limits
    state: State = State.UNLOADED
    ttl_s: float = 600.0
    in_flight: int = 0
    waiters: tuple[m.EnsureLoaded, ...] = ()
    unload_waiters: tuple[m.ReplyChannel, ...] = ()
    failures: int = 0
    retry_at: float | None = None
    last_used_at: float = 0.0
    idle_deadline: float | None = None
    op: int = 0
    timer_generation: int = 0
    last_error: str | None = None


def new_core(model: str, limits: Limits, *, identifier: str | None = None) -> Core:
    """Return the core of a model that has never been loaded."""
    return Core(
        model=model, identifier=identifier or model, limits=limits, ttl_s=limits.default_ttl_s
    )


def snapshot(core: Core, now: float) -> ModelStatus:
    """Return the public status of ``core`` at time ``now``."""
    expires = None
    if core.state is State.READY and core.in_flight == 0 and core.idle_deadline is not None:
        expires = max(0.0, core.idle_deadline - now)
    retry = None
    if core.state is State.BREAKER_OPEN and core.retry_at is not None:
        retry = max(0.0, core.retry_at - now)
    return ModelStatus(
        model=core.model,
        state=core.state,
        identifier=core.identifier,
        ttl_s=core.ttl_s,
        expires_in_s=expires,
        in_flight=core.in_flight,
        consecutive_failures=core.failures,
        retry_after_s=retry,
        last_error=core.last_error,
        generation=core.op,
    )


def decide(core: Core, msg: m.Message, now: float) -> tuple[Core, list[Effect]]:
    """Apply one message to ``core``.

    Returns:
        The new core and the effects the actor must carry out, in order.

    Raises:
        InvalidTransition: only on a bug (the policy fed an input the table lacks).
    """
    fx: list[Effect] = []
    match msg:
        case m.EnsureLoaded():
            core = _ensure_loaded(core, msg, now, fx)
        case m.Release():
            core = _release(core, now, fx)
        case m.Unload():
            core = _unload(core, msg, now, fx)
        case m.Evict():
            if core.state is State.READY and core.in_flight == 0:
                core = _start_unload(core, Input.UNLOAD_REQUESTED, "evicted", fx)
        case m.ResetBreaker():
            if core.state in (State.BREAKER_OPEN, State.UNLOADED):
                core = _fire(core, Input.RESET, fx, failures=0, retry_at=None, last_error=None)
                fx.append(_disarm(Timer.COOLDOWN, core))
            fx.append(SendReply(reply=msg.reply, result=snapshot(core, now)))
        case m.Discovered():
            if core.state is State.UNLOADED:
                core = _fire(core, Input.DISCOVERED, fx, op=core.op + 1)
                fx.append(StartVerify(op=core.op))
        case m.Lost():
            if core.state is State.READY and msg.generation == core.op:
                core = _fire(core, Input.LOST, fx, idle_deadline=None, last_error=msg.reason)
                fx.append(_disarm(Timer.IDLE, core))
        case m.LoadOk():
            if core.state is State.LOADING and msg.op == core.op:
                core = _fire(core, Input.LOAD_OK, fx)
                fx.append(StartVerify(op=core.op))
        case m.LoadFailed():
            if core.state is State.LOADING and msg.op == core.op:
                core = _fail(core, Input.LOAD_FAILED, msg.error, msg.counts, now, fx)
        case m.VerifyOk():
            if core.state is State.VERIFYING and msg.op == core.op:
                core = _ready(core, now, fx)
        case m.VerifyFailed():
            if core.state is State.VERIFYING and msg.op == core.op:
                core = _fail(core, Input.VERIFY_FAILED, msg.error, True, now, fx)
        case m.UnloadDone():
            if core.state is State.EXPIRING and msg.op == core.op:
                core = _unloaded(core, msg, now, fx)
        case m.IdleTimeout():
            if (
                core.state is State.READY
                and core.in_flight == 0
                and msg.generation == core.timer_generation
            ):
                core = _start_unload(core, Input.IDLE_TIMEOUT, "idle", fx)
        case m.CooldownOver():
            if core.state is State.BREAKER_OPEN and msg.generation == core.timer_generation:
                core = _fire(core, Input.COOLDOWN_OVER, fx, retry_at=None)
    return core, fx


def _fire(
    core: Core, inp: Input, fx: list[Effect], *, tripped: bool = False, **changes: object
) -> Core:
    dst = next_state(core.state, inp, tripped=tripped)
    fx.append(Transitioned(src=core.state, dst=dst, input=inp))
    return structs.replace(core, state=dst, **changes)


def _disarm(timer: Timer, core: Core) -> ArmTimer:
    return ArmTimer(timer=timer, deadline=None, generation=core.timer_generation)


def _arm_idle(core: Core, now: float, fx: list[Effect]) -> Core:
    gen = core.timer_generation + 1
    deadline = now + core.ttl_s
    fx.append(ArmTimer(timer=Timer.IDLE, deadline=deadline, generation=gen))
    return structs.replace(core, timer_generation=gen, idle_deadline=deadline, last_used_at=now)


def _ensure_loaded(core: Core, msg: m.EnsureLoaded, now: float, fx: list[Effect]) -> Core:
    if msg.ttl_s is not None and msg.ttl_s != core.ttl_s:
        core = structs.replace(core, ttl_s=msg.ttl_s)
    state = core.state
    if state is State.READY:
        # Hot path: extended state only; READY on REQUESTED is an internal transition.
        if msg.lease:
            core = structs.replace(core, in_flight=core.in_flight + 1, last_used_at=now)
        elif core.in_flight == 0:
            core = _arm_idle(core, now, fx)
        fx.append(SendReply(reply=msg.reply, result=snapshot(core, now), lease=msg.lease))
        return core
    if state is State.BREAKER_OPEN:
        core = _fire(core, Input.REQUESTED, fx)
        retry = (core.retry_at or now) - now
        fx.append(
            SendReply(reply=msg.reply, result=BreakerOpen(core.model, retry, core.last_error))
        )
        return core
    core = structs.replace(core, waiters=(*core.waiters, msg))
    if state is State.UNLOADED:
        return _start_load(core, now, fx)
    return _fire(core, Input.REQUESTED, fx)  # LOADING, VERIFYING, EXPIRING: join


def _start_load(core: Core, now: float, fx: list[Effect]) -> Core:
    core = _fire(core, Input.REQUESTED, fx, op=core.op + 1)
    wait_s = max(w.wait_s for w in core.waiters)
    fx.append(StartLoad(op=core.op, ttl_s=core.ttl_s, wait_s=wait_s))
    return core


def _release(core: Core, now: float, fx: list[Effect]) -> Core:
    if core.in_flight == 0:
        return core  # a release with nothing in flight is ignored, never negative
    core = structs.replace(core, in_flight=core.in_flight - 1, last_used_at=now)
    if core.in_flight == 0 and core.state is State.READY:
        core = _arm_idle(core, now, fx)
    return core


def _unload(core: Core, msg: m.Unload, now: float, fx: list[Effect]) -> Core:
    state = core.state
    if state is State.READY and core.in_flight > 0:
        busy = ModelBusy(
            core.model,
            f"model {core.model!r} has {core.in_flight} request(s) in flight; "
            "unload it when they finish (its idle TTL will also expire it)",
        )
        fx.append(SendReply(reply=msg.reply, result=busy))
        return core
    if state in (State.LOADING, State.VERIFYING):
        busy = ModelBusy(
            core.model, f"model {core.model!r} is {state.value}; unload it once it is READY"
        )
        fx.append(SendReply(reply=msg.reply, result=busy))
        return core
    if state is State.READY:
        core = _start_unload(core, Input.UNLOAD_REQUESTED, "requested", fx)
        return structs.replace(core, unload_waiters=(msg.reply,))
    core = _fire(core, Input.UNLOAD_REQUESTED, fx)
    if state is State.EXPIRING:
        return structs.replace(core, unload_waiters=(*core.unload_waiters, msg.reply))
    fx.append(SendReply(reply=msg.reply, result=snapshot(core, now)))  # nothing loaded
    return core


def _start_unload(core: Core, inp: Input, reason: str, fx: list[Effect]) -> Core:
    core = _fire(core, inp, fx, op=core.op + 1, idle_deadline=None)
    fx.append(_disarm(Timer.IDLE, core))
    fx.append(StartUnload(op=core.op, reason=reason))
    return core


def _ready(core: Core, now: float, fx: list[Effect]) -> Core:
    waiters = core.waiters
    leases = sum(1 for w in waiters if w.lease)
    core = _fire(
        core,
        Input.VERIFY_OK,
        fx,
        failures=0,
        retry_at=None,
        last_error=None,
        in_flight=core.in_flight + leases,
        last_used_at=now,
        waiters=(),
    )
    if core.in_flight == 0:
        core = _arm_idle(core, now, fx)
    status = snapshot(core, now)
    fx.extend(SendReply(reply=w.reply, result=status, lease=w.lease) for w in waiters)
    return core


def _fail(
    core: Core,
    inp: Input,
    error: OrchestratorError,
    counts: bool,
    now: float,
    fx: list[Effect],
) -> Core:
    failures = core.failures + 1 if counts else core.failures
    tripped = counts and failures >= core.limits.breaker_threshold
    waiters = core.waiters
    core = _fire(
        core,
        inp,
        fx,
        tripped=tripped,
        failures=failures,
        waiters=(),
        last_error=str(error),
    )
    if tripped:
        gen = core.timer_generation + 1
        retry_at = now + core.limits.breaker_cooldown_s
        core = structs.replace(core, retry_at=retry_at, timer_generation=gen)
        fx.append(ArmTimer(timer=Timer.COOLDOWN, deadline=retry_at, generation=gen))
    fx.extend(SendReply(reply=w.reply, result=error) for w in waiters)
    return core


def _unloaded(core: Core, msg: m.UnloadDone, now: float, fx: list[Effect]) -> Core:
    unload_waiters = core.unload_waiters
    core = _fire(core, Input.UNLOAD_DONE, fx, unload_waiters=())
    result: ModelStatus | OrchestratorError = msg.error or snapshot(core, now)
    fx.extend(SendReply(reply=r, result=result) for r in unload_waiters)
    if core.waiters:  # requests that arrived while expiring: load again, not lost
        core = _start_load(core, now, fx)
    return core
