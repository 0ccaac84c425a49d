"""What the pure policy asks the actor to do: one closed union of frozen Structs."""

from __future__ import annotations

import enum
from typing import TypeAlias

import msgspec

from orchestrator.lifecycle import Input, State
from orchestrator.messages import Reply, ReplyChannel

__all__ = [
    "ArmTimer",
    "Effect",
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


class _Effect(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    pass


class StartLoad(_Effect, frozen=True):
    """Load the model (after reserving capacity) and report ``LoadOk``/``LoadFailed``."""

    op: int
    ttl_s: float
    wait_s: float


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


class Transitioned(_Effect, frozen=True):
    """The state changed (or an input was accepted); for logs and metrics."""

    src: State
    dst: State
    input: Input


Effect: TypeAlias = StartLoad | StartVerify | StartUnload | ArmTimer | SendReply | Transitioned
