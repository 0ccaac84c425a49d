"""The pure policy's state and primitives, shared by its rule modules.

:class:`Core` is a model's extended state; :func:`fire` is the one way a rule
changes :class:`~orchestrator.lifecycle.State` (through
:func:`~orchestrator.lifecycle.next_state`). The rules live in
:mod:`orchestrator.policy` (requests, loads, verification) and
:mod:`orchestrator.policy_unload` (unloads, cleanup, facts from the reconciler).
Nothing here does I/O or reads a clock.
"""

from __future__ import annotations

from msgspec import Struct, structs

from orchestrator import messages as m
from orchestrator.config import Config
from orchestrator.effects import (
    ArmTimer,
    BreakerChange,
    CapacityChanged,
    Effect,
    Timer,
    Transitioned,
)
from orchestrator.lifecycle import Input, State, next_state
from orchestrator.status import ModelStatus, Owner, context_warning

__all__ = [
    "WITHOUT_ROOM",
    "Core",
    "Limits",
    "arm_idle",
    "disarm",
    "fire",
    "new_core",
    "open_breaker",
    "owns",
    "snapshot",
]

WITHOUT_ROOM = (State.UNLOADED, State.BREAKER_OPEN)
"""States in which the model holds no memory on the backend, hence no capacity slot."""


class Limits(Struct, frozen=True, kw_only=True):
    """The policy numbers a core needs, from ``Config`` and the backend (:meth:`from_config`)."""

    default_ttl_s: float
    max_ttl_s: float
    breaker_threshold: int
    breaker_cooldown_s: float
    # Instances another client loaded are managed (unloaded, evicted) only by choice.
    manage_foreign: bool
    # The backend enforces the TTL it was loaded with and cannot change it (LM Studio):
    # asking a loaded model for another TTL must not report a number it does not hold.
    backend_ttl: bool
    # A failed unload is retried after this, doubling up to the cap (the slot is kept).
    unload_retry_initial_s: float = 1.0
    unload_retry_max_s: float = 30.0

    @classmethod
    def from_config(cls, config: Config, *, backend_ttl: bool) -> Limits:
        """The limits ``config`` sets; ``backend_ttl``: the backend holds a load's TTL itself."""
        return cls(
            default_ttl_s=config.default_ttl_s,
            max_ttl_s=config.max_ttl_s,
            breaker_threshold=config.breaker_threshold,
            breaker_cooldown_s=config.breaker_cooldown_s,
            manage_foreign=config.manage_foreign,
            backend_ttl=backend_ttl,
        )


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
    # Who the instance on the backend belongs to; None while nothing is loaded.
    owner: Owner | None = None
    # Consecutive failed unloads of the current EXPIRING spell (sets the retry backoff);
    # set to 0 by every way into EXPIRING, so its value outside one is never read.
    unload_failures: int = 0
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


def owns(core: Core) -> bool:
    """Whether this server may unload the instance (by TTL, eviction or ``unload_model``)."""
    return core.owner is Owner.OURS or core.owner is Owner.ADOPTED


def snapshot(core: Core, now: float) -> ModelStatus:
    """Return the public status of ``core`` at time ``now``."""
    expires = None
    if core.state is State.READY and core.in_flight == 0 and core.idle_deadline is not None:
        expires = max(0.0, core.idle_deadline - now)
    retry = None
    # Only a model holding memory has a loaded context (a lost or unloaded one has none).
    loaded = None if core.state in WITHOUT_ROOM else core.context_length
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
        owner=None if core.state in WITHOUT_ROOM else core.owner,
    )


def fire(
    core: Core, inp: Input, fx: list[Effect], *, tripped: bool = False, **changes: object
) -> Core:
    """Feed ``inp`` to the table, record the transition and apply ``changes``."""
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


def open_breaker(core: Core, now: float, fx: list[Effect]) -> Core:
    """The breaker just opened: arm its cooldown."""
    gen = core.timer_generation + 1
    retry_at = now + core.limits.breaker_cooldown_s
    fx.append(ArmTimer(timer=Timer.COOLDOWN, deadline=retry_at, generation=gen))
    return structs.replace(core, retry_at=retry_at, timer_generation=gen)


def disarm(timer: Timer, core: Core) -> ArmTimer:
    """The effect that disarms ``timer``."""
    return ArmTimer(timer=timer, deadline=None, generation=core.timer_generation)


def arm_idle(core: Core, now: float, fx: list[Effect]) -> Core:
    """The model became idle: start its idle TTL (if we own it) and offer it for eviction.

    A foreign instance has no idle timer of ours: its TTL is the backend's and
    whoever loaded it decides when it goes (issue 16).
    """
    if not owns(core):
        fx.append(CapacityChanged())  # it may count as idle for the pool's reasons
        return structs.replace(core, idle_deadline=None, last_used_at=now)
    gen = core.timer_generation + 1
    deadline = now + core.ttl_s
    fx.append(ArmTimer(timer=Timer.IDLE, deadline=deadline, generation=gen))
    fx.append(CapacityChanged())  # idle READY: a candidate for eviction
    return structs.replace(core, timer_generation=gen, idle_deadline=deadline, last_used_at=now)
