"""What the pure policy asks the actor to do: one closed union of frozen Structs."""

from __future__ import annotations

import enum
from typing import TypeAlias

import msgspec

from orchestrator.lifecycle import Input, State
from orchestrator.messages import Reply, ReplyChannel

__all__ = [
    "ArmTimer",
    "BreakerChange",
    "CapacityChanged",
    "Effect",
    "HoldCapacity",
    "ReleaseCapacity",
    "SendReply",
    "StartLoad",
    "StartUnload",
    "StartVerify",
    "Timer",
    "Transitioned",
]


class Timer(enum.StrEnum):
    """The actor's restartable timers."""

    IDLE = "idle"
    COOLDOWN = "cooldown"
    UNLOAD_RETRY = "unload_retry"


class BreakerChange(enum.StrEnum):
    """What a transition did to the circuit breaker (for its log events)."""

    OPENED = "opened"
    HALF_OPEN = "half_open"
    CLOSED = "closed"  # READY again after the breaker had opened
    RESET = "reset"  # closed by hand


class _Effect(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    pass


class StartLoad(_Effect, frozen=True):
    """Load the model (after reserving capacity) and report ``LoadOk``/``LoadFailed``."""

    op: int
    ttl_s: float
    wait_s: float
    context_length: int | None = None


class StartVerify(_Effect, frozen=True):
    """Poll the backend until the model is listed, then report ``VerifyOk``/``VerifyFailed``."""

    op: int


class StartUnload(_Effect, frozen=True):
    """Unload the model and report ``UnloadDone``; ``reason`` is for logs and metrics."""

    op: int
    reason: str


class ArmTimer(_Effect, frozen=True):
    """Set ``timer`` to fire at ``deadline`` (``None`` disarms it)."""

    timer: Timer
    deadline: float | None
    generation: int


class SendReply(_Effect, frozen=True):
    """Answer one waiting request."""

    reply: ReplyChannel
    result: Reply
    lease: bool = False


class HoldCapacity(_Effect, frozen=True):
    """The backend holds the model without a load of ours (found there): it takes a slot.

    The slot may exceed the limit until the instance goes; it is never evicted
    unless we own it (issue 16).
    """


class ReleaseCapacity(_Effect, frozen=True):
    """The model settled without holding memory: give its slot back to the capacity pool."""


class CapacityChanged(_Effect, frozen=True):
    """The model became idle: loads waiting for room may now evict it."""


class Transitioned(_Effect, frozen=True):
    """The state changed (or an input was accepted); for logs and metrics."""

    src: State
    dst: State
    input: Input
    breaker: BreakerChange | None = None


Effect: TypeAlias = (
    StartLoad
    | StartVerify
    | StartUnload
    | ArmTimer
    | SendReply
    | HoldCapacity
    | ReleaseCapacity
    | CapacityChanged
    | Transitioned
)
