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

from msgspec import structs

from orchestrator import messages as m
from orchestrator import policy_unload as unloads
from orchestrator.effects import (
    Effect,
    HoldCapacity,
    ReleaseCapacity,
    SendReply,
    StartLoad,
    StartVerify,
    Timer,
)
from orchestrator.errors import (
    BreakerOpen,
    CapacityExhausted,
    OrchestratorError,
    is_outage,
)
from orchestrator.lifecycle import Input, State
from orchestrator.policy_core import (
    WITHOUT_ROOM,
    Core,
    Limits,
    arm_idle,
    disarm,
    fire,
    new_core,
    open_breaker,
    owns,
    snapshot,
)
from orchestrator.status import Owner

__all__ = ["Core", "Limits", "decide", "new_core", "snapshot", "unload_on_stop"]


def unload_on_stop(core: Core) -> bool:
    """Whether stopping the actor must unload the model from the backend.

    Only what this server loaded (or may be loading right now) is unloaded: a
    model adopted at start belongs to whoever loaded it.
    """
    if core.state in WITHOUT_ROOM:
        return False
    return core.owner is Owner.OURS or core.state is State.LOADING


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
            core = unloads.unload(core, msg, now, fx)
        case m.Evict():
            core = unloads.evict(core, fx)
        case m.ResetBreaker():
            if core.state in (State.BREAKER_OPEN, State.UNLOADED):
                core = fire(core, Input.RESET, fx, failures=0, retry_at=None, last_error=None)
                fx.append(disarm(Timer.COOLDOWN, core))
            fx.append(SendReply(reply=msg.reply, result=snapshot(core, now)))
        case m.Discovered():
            if core.state is State.UNLOADED:
                owner = _found_owner(core)
                core = fire(core, Input.DISCOVERED, fx, op=core.op + 1, asked_context=None)
                core = structs.replace(core, context_length=None, owner=owner)
                fx.append(HoldCapacity())
                fx.append(StartVerify(op=core.op))
        case m.Lost():
            core = unloads.lost(core, msg, now, fx)
            core = _reload_waiters(core, now, fx)
        case m.LoadOk():
            if core.state is State.LOADING and msg.op == core.op:
                # Found already loaded (by someone else): not ours, unless managed by choice.
                owner = _found_owner(core) if msg.adopted else Owner.OURS
                core = fire(core, Input.LOAD_OK, fx, owner=owner)
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
                # A foreign instance's failure, or a verify that could not reach the backend, is
                # not this model's own (never trips it).
                counts = owns(core) and not is_outage(msg.error)
                core = _fail(core, Input.VERIFY_FAILED, msg.error, counts, now, fx)
                core = _reload_waiters(unloads.cleanup(core, now, fx), now, fx)
        case m.UnloadDone():
            core = _reload_waiters(unloads.unload_done(core, msg, now, fx), now, fx)
        case m.UnloadRetry():
            core = unloads.retry_unload(core, msg, fx)
        case m.TtlObserved():
            # The TTL reported is the one the backend enforces (issue 16).
            if core.state is State.READY and core.limits.backend_ttl:
                core = structs.replace(core, ttl_s=msg.ttl_s)
        case m.IdleTimeout():
            if (
                core.state is State.READY
                and core.in_flight == 0
                and msg.generation == core.timer_generation
                and owns(core)
            ):
                core = unloads.start_unload(core, Input.IDLE_TIMEOUT, "idle", fx)
        case m.CooldownOver():
            if core.state is State.BREAKER_OPEN and msg.generation == core.timer_generation:
                core = fire(core, Input.COOLDOWN_OVER, fx, retry_at=None)
        case _:
            assert_never(msg)
    # Settled without memory after this message (not merely passing through UNLOADED on
    # the way to a reload, which keeps the slot): give the slot back.
    if core.state is not entered and core.state in WITHOUT_ROOM:
        fx.append(ReleaseCapacity())
    return core, fx


def _found_owner(core: Core) -> Owner:
    """Who an instance found on the backend (not loaded by us) belongs to."""
    return Owner.ADOPTED if core.limits.manage_foreign else Owner.FOREIGN


def _reload_waiters(core: Core, now: float, fx: list[Effect]) -> Core:
    """Requests that arrived while the model was going: load it again, not lost."""
    if core.state is State.UNLOADED and core.waiters:
        return _start_load(core, now, fx)
    return core


def _ensure_loaded(core: Core, msg: m.EnsureLoaded, now: float, fx: list[Effect]) -> Core:
    state = core.state
    if msg.ttl_s is not None and msg.ttl_s != core.ttl_s and not _ttl_fixed(core):
        core = structs.replace(core, ttl_s=msg.ttl_s)
    if state is State.READY:
        # Hot path: extended state only; READY on REQUESTED is an internal transition.
        if msg.lease:
            core = structs.replace(core, in_flight=core.in_flight + 1, last_used_at=now)
        elif core.in_flight == 0:
            core = arm_idle(core, now, fx)
        fx.append(SendReply(reply=msg.reply, result=snapshot(core, now), lease=msg.lease))
        return core
    if state is State.BREAKER_OPEN:
        core = fire(core, Input.REQUESTED, fx)
        retry = (core.retry_at or now) - now
        fx.append(
            SendReply(reply=msg.reply, result=BreakerOpen(core.model, retry, core.last_error))
        )
        return core
    core = structs.replace(core, waiters=(*core.waiters, msg))
    if state is State.UNLOADED:
        return _start_load(core, now, fx)
    return fire(core, Input.REQUESTED, fx)  # LOADING, VERIFYING, EXPIRING: join


def _ttl_fixed(core: Core) -> bool:
    """Whether the backend holds the TTL the model was loaded with and cannot change it.

    LM Studio enforces the TTL given at load and has no route to change it
    (lmstudio-api.md), so a loaded (or loading) model keeps reporting that one:
    never a number the backend does not hold (issue 16). Backends whose TTL is
    ours (llama.cpp: our idle timer is the only one) take the new one at once.
    """
    loaded = (State.LOADING, State.VERIFYING, State.READY)
    return core.state in loaded and (core.limits.backend_ttl or core.owner is Owner.FOREIGN)


def _start_load(core: Core, now: float, fx: list[Effect]) -> Core:
    core = fire(core, Input.REQUESTED, fx, op=core.op + 1)
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
        core = arm_idle(core, now, fx)
    return core


def _ready(core: Core, now: float, fx: list[Effect]) -> Core:
    waiters = core.waiters
    leases = sum(1 for w in waiters if w.lease)
    core = fire(
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
        core = arm_idle(core, now, fx)
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
    core = fire(
        core,
        inp,
        fx,
        tripped=tripped,
        failures=failures,
        waiters=(),
        last_error=str(error),
    )
    if core.state is State.BREAKER_OPEN:
        core = open_breaker(core, now, fx)
    fx.extend(SendReply(reply=w.reply, result=error) for w in waiters)
    return core
