"""The pure policy's unload rules: who may unload, failed unloads, cleanup and lost instances.

Rules (issue 16, docs/architecture.md "Ownership"):

- Only an instance this server owns (:func:`~orchestrator.policy_core.owns`) is
  unloaded by it, whether by idle TTL, eviction or ``unload_model``; asking to
  unload a foreign one answers :class:`~orchestrator.errors.NotOwned`.
- A slot is freed only when the backend confirmed the instance gone: an unload
  that fails keeps the model EXPIRING (holding its slot) and is retried with a
  doubling backoff; the reconciler's ``Lost`` also settles it.
- A failed verification cleans up: the model is unloaded (EXPIRING) before it
  settles, and it settles into BREAKER_OPEN if that failure tripped the breaker.
"""

from __future__ import annotations

from msgspec import structs

from orchestrator import messages as m
from orchestrator.effects import ArmTimer, Effect, SendReply, StartUnload, Timer
from orchestrator.errors import BreakerOpen, ModelBusy, NotOwned
from orchestrator.lifecycle import Input, State
from orchestrator.policy_core import Core, disarm, fire, open_breaker, owns, snapshot

__all__ = ["cleanup", "evict", "lost", "retry_unload", "start_unload", "unload", "unload_done"]


def unload(core: Core, msg: m.Unload, now: float, fx: list[Effect]) -> Core:
    """``unload_model``: unload what we own and is idle; say why not otherwise."""
    state = core.state
    if state in (State.READY, State.VERIFYING) and not owns(core):
        fx.append(SendReply(reply=msg.reply, result=NotOwned(core.model, core.identifier)))
        return core
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
        core = start_unload(core, Input.UNLOAD_REQUESTED, "requested", fx)
        return structs.replace(core, unload_waiters=(msg.reply,))
    core = fire(core, Input.UNLOAD_REQUESTED, fx)
    if state is State.EXPIRING:
        return structs.replace(core, unload_waiters=(*core.unload_waiters, msg.reply))
    fx.append(SendReply(reply=msg.reply, result=snapshot(core, now)))  # nothing loaded
    return core


def evict(core: Core, fx: list[Effect]) -> Core:
    """The pool needs room: unload if idle and ours (a foreign instance is never evicted)."""
    if core.state is State.READY and core.in_flight == 0 and owns(core):
        return start_unload(core, Input.UNLOAD_REQUESTED, "evicted", fx)
    return core


def start_unload(core: Core, inp: Input, reason: str, fx: list[Effect]) -> Core:
    """Enter EXPIRING on ``inp`` and start the unload."""
    core = fire(core, inp, fx, op=core.op + 1, idle_deadline=None, unload_failures=0)
    fx.append(disarm(Timer.IDLE, core))
    fx.append(StartUnload(op=core.op, reason=reason))
    return core


def cleanup(core: Core, now: float, fx: list[Effect]) -> Core:
    """After a failed verification (now EXPIRING): unload what we may have loaded.

    The backend may still be loading it or hold it unlisted (a slow listing), so
    its slot is kept until the unload is confirmed. An instance we do not own is
    not ours to unload: it settles at once.
    """
    if owns(core):
        core = structs.replace(core, op=core.op + 1, unload_failures=0)
        fx.append(StartUnload(op=core.op, reason="verify_failed"))
        return core
    return _settle(core, Input.UNLOAD_DONE, now, fx)


def unload_done(core: Core, msg: m.UnloadDone, now: float, fx: list[Effect]) -> Core:
    """An unload finished: settle if the backend confirmed it, else keep the slot and retry."""
    if core.state is not State.EXPIRING or msg.op != core.op:
        return core
    if msg.error is None:
        return _settle(core, Input.UNLOAD_DONE, now, fx)
    failures = core.unload_failures + 1
    delay = min(
        core.limits.unload_retry_initial_s * 2 ** (failures - 1), core.limits.unload_retry_max_s
    )
    gen = core.timer_generation + 1
    unload_waiters = core.unload_waiters
    core = fire(
        core,
        Input.UNLOAD_FAILED,
        fx,
        unload_failures=failures,
        timer_generation=gen,
        last_error=str(msg.error),
        unload_waiters=(),
    )
    fx.append(ArmTimer(timer=Timer.UNLOAD_RETRY, deadline=now + delay, generation=gen))
    # Whoever asked learns it failed now; the retries go on without them.
    fx.extend(SendReply(reply=r, result=msg.error) for r in unload_waiters)
    return core


def retry_unload(core: Core, msg: m.UnloadRetry, fx: list[Effect]) -> Core:
    """The backoff after a failed unload ended: try again (the slot is still held)."""
    if core.state is not State.EXPIRING or msg.generation != core.timer_generation:
        return core
    core = structs.replace(core, op=core.op + 1)
    fx.append(StartUnload(op=core.op, reason="retry"))
    return core


def lost(core: Core, msg: m.Lost, now: float, fx: list[Effect]) -> Core:
    """The backend no longer holds the instance (reconciler or a watched worker's end)."""
    if msg.generation != core.op:
        return core
    if core.state is State.READY:
        core = fire(core, Input.LOST, fx, idle_deadline=None, last_error=msg.reason, owner=None)
        fx.append(disarm(Timer.IDLE, core))
    elif core.state is State.EXPIRING:
        core = _settle(core, Input.LOST, now, fx)
    return core


def _settle(core: Core, inp: Input, now: float, fx: list[Effect]) -> Core:
    """The instance is confirmed gone: leave EXPIRING, into the breaker if it tripped."""
    unload_waiters = core.unload_waiters
    tripped = core.failures >= core.limits.breaker_threshold
    core = fire(core, inp, fx, tripped=tripped, unload_waiters=(), owner=None)
    fx.append(disarm(Timer.UNLOAD_RETRY, core))
    if core.state is State.BREAKER_OPEN:
        core = open_breaker(core, now, fx)
        refused = BreakerOpen(core.model, core.limits.breaker_cooldown_s, core.last_error)
        fx.extend(SendReply(reply=w.reply, result=refused) for w in core.waiters)
        core = structs.replace(core, waiters=())
    status = snapshot(core, now)
    fx.extend(SendReply(reply=r, result=status) for r in unload_waiters)
    return core
