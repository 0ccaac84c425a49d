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

Everything the actor does follows from an effect: it keeps no decision of its
own. Capacity is given back when the model settles without memory
(:class:`ReleaseCapacity`), loads waiting for room are woken when it becomes
idle (:class:`CapacityChanged`), a capacity failure never feeds the breaker, and
whether stopping must unload the model is :func:`unload_on_stop`.
"""

from __future__ import annotations

from typing import assert_never

from msgspec import Struct, structs

from orchestrator import messages as m
from orchestrator.effects import (
    ArmTimer,
    BreakerChange,
    CapacityChanged,
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
    BreakerOpen,
    CapacityExhausted,
    ModelBusy,
    OrchestratorError,
    is_outage,
)
from orchestrator.lifecycle import Input, State, next_state
from orchestrator.status import ModelStatus, context_warning

__all__ = ["Core", "Limits", "decide", "new_core", "snapshot", "unload_on_stop"]

# States in which the model holds no memory on the backend, hence no capacity slot.
_WITHOUT_ROOM = (State.UNLOADED, State.BREAKER_OPEN)


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
    # This server's load put the model on the backend (not adopted): stopping unloads it.
    loaded_by_us: bool = False
    # The breaker opened since the last success: reaching READY closes it (a log event).
    breaker_opened: bool = False
    # The context the last load asked for, and the one the backend reports it loaded.
    asked_context: int | None = None
    context_length: int | None = None


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
    # Only a model holding memory has a loaded context (a lost or unloaded one has none).
    loaded = None if core.state in _WITHOUT_ROOM else core.context_length
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
        context_length=loaded,
        warning=context_warning(core.model, core.asked_context, loaded),
    )


def unload_on_stop(core: Core) -> bool:
    """Whether stopping the actor must unload the model from the backend.

    Only what this server loaded (or may be loading right now) is unloaded: a
    model adopted at start belongs to whoever loaded it.
    """
    if core.state in _WITHOUT_ROOM:
        return False
    return core.loaded_by_us or core.state is State.LOADING


def decide(core: Core, msg: m.Message, now: float) -> tuple[Core, list[Effect]]:
    """Apply one message to ``core``.

    Returns:
        The new core and the effects the actor must carry out, in order.

    Raises:
        InvalidTransition: only on a bug (the policy fed an input the table lacks).
    """
    fx: list[Effect] = []
    entered = core.state
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
                core = _fire(core, Input.DISCOVERED, fx, op=core.op + 1, asked_context=None)
                core = structs.replace(core, context_length=None)
                fx.append(StartVerify(op=core.op))
        case m.Lost():
            if core.state is State.READY and msg.generation == core.op:
                core = _fire(core, Input.LOST, fx, idle_deadline=None, last_error=msg.reason)
                fx.append(_disarm(Timer.IDLE, core))
        case m.LoadOk():
            if core.state is State.LOADING and msg.op == core.op:
                ours = core.loaded_by_us or not msg.adopted
                core = _fire(core, Input.LOAD_OK, fx, loaded_by_us=ours)
                fx.append(StartVerify(op=core.op))
        case m.LoadFailed():
            if core.state is State.LOADING and msg.op == core.op:
                # No room, or no server (DESIGN.md 14: backend health is not a
                # model's failure), is not the model's fault: never opens the breaker.
                counts = not isinstance(msg.error, CapacityExhausted) and not is_outage(msg.error)
                core = _fail(core, Input.LOAD_FAILED, msg.error, counts, now, fx)
        case m.VerifyOk():
            if core.state is State.VERIFYING and msg.op == core.op:
                core = _ready(structs.replace(core, context_length=msg.context_length), now, fx)
        case m.VerifyFailed():
            if core.state is State.VERIFYING and msg.op == core.op:
                counts = not is_outage(msg.error)  # a verify that could not reach the backend
                core = _fail(core, Input.VERIFY_FAILED, msg.error, counts, now, fx)
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
        case _:
            assert_never(msg)
    # Settled without memory after this message (not merely passing through UNLOADED on
    # the way to a reload, which keeps the slot): give the slot back.
    if core.state is not entered and core.state in _WITHOUT_ROOM:
        fx.append(ReleaseCapacity())
    return core, fx


def _fire(
    core: Core, inp: Input, fx: list[Effect], *, tripped: bool = False, **changes: object
) -> Core:
    src = core.state
    dst = next_state(src, inp, tripped=tripped)
    breaker = _breaker_change(core, dst, inp)
    if breaker is not None and breaker is not BreakerChange.HALF_OPEN:
        changes["breaker_opened"] = breaker is BreakerChange.OPENED
    fx.append(Transitioned(src=src, dst=dst, input=inp, breaker=breaker))
    return structs.replace(core, state=dst, **changes)


def _breaker_change(core: Core, dst: State, inp: Input) -> BreakerChange | None:
    if inp is Input.RESET:
        return BreakerChange.RESET
    src = core.state
    if src is dst:
        return None
    if dst is State.BREAKER_OPEN:
        return BreakerChange.OPENED
    if src is State.BREAKER_OPEN and inp is Input.COOLDOWN_OVER:
        return BreakerChange.HALF_OPEN
    if dst is State.READY and core.breaker_opened:
        return BreakerChange.CLOSED
    return None


def _disarm(timer: Timer, core: Core) -> ArmTimer:
    return ArmTimer(timer=timer, deadline=None, generation=core.timer_generation)


def _arm_idle(core: Core, now: float, fx: list[Effect]) -> Core:
    gen = core.timer_generation + 1
    deadline = now + core.ttl_s
    fx.append(ArmTimer(timer=Timer.IDLE, deadline=deadline, generation=gen))
    fx.append(CapacityChanged())  # idle READY: a candidate for eviction
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
    # The first waiter that names a context length sets it (issue 17, F5).
    context = next((w.context_length for w in core.waiters if w.context_length), None)
    fx.append(StartLoad(op=core.op, ttl_s=core.ttl_s, wait_s=wait_s, context_length=context))
    return structs.replace(core, asked_context=context, context_length=None)


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
    core = _fire(core, Input.UNLOAD_DONE, fx, unload_waiters=(), loaded_by_us=False)
    result: ModelStatus | OrchestratorError = msg.error or snapshot(core, now)
    fx.extend(SendReply(reply=r, result=result) for r in unload_waiters)
    if core.waiters:  # requests that arrived while expiring: load again, not lost
        core = _start_load(core, now, fx)
    return core
