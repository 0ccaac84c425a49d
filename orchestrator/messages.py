"""What goes into a model actor's mailbox: one closed union of frozen, tagged Structs.

Requests come from callers (through the facade) and carry their own reply
channel; inputs come from the actor's own child tasks (loads, verifies,
unloads, timers) and report outcomes. msgspec does not validate field types at
construction, so a reply channel can ride in a Struct.
"""

from __future__ import annotations

from typing import TypeAlias

import msgspec
import trio

from orchestrator.errors import OrchestratorError
from orchestrator.status import ModelStatus

__all__ = [
    "CooldownOver",
    "Discovered",
    "EnsureLoaded",
    "Evict",
    "IdleTimeout",
    "LoadFailed",
    "LoadOk",
    "Lost",
    "Message",
    "Release",
    "Reply",
    "ReplyChannel",
    "ResetBreaker",
    "TtlObserved",
    "Unload",
    "UnloadDone",
    "UnloadRetry",
    "VerifyFailed",
    "VerifyOk",
]

Reply: TypeAlias = ModelStatus | OrchestratorError
ReplyChannel: TypeAlias = trio.MemorySendChannel[Reply]


class _Msg(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    pass


class EnsureLoaded(_Msg, frozen=True):
    """Make the model READY; with ``lease``, also count the caller in flight."""

    reply: ReplyChannel
    lease: bool = False
    ttl_s: float | None = None
    wait_s: float = 300.0
    context_length: int | None = None
    """The context to load with, if this request starts the load (else ignored)."""


class Release(_Msg, frozen=True):
    """A lease ended."""


class Unload(_Msg, frozen=True):
    """Unload the model now (refused while requests are in flight)."""

    reply: ReplyChannel


class Evict(_Msg, frozen=True):
    """The supervisor needs room: unload if (and only if) idle."""


class ResetBreaker(_Msg, frozen=True):
    """Close the breaker by hand and forget the failures."""

    reply: ReplyChannel


class Discovered(_Msg, frozen=True):
    """The backend holds this model and no load of ours put it there.

    Found at start or by the reconciler: a foreign instance, or adopted when
    ``manage_foreign`` is set.
    """


class Lost(_Msg, frozen=True):
    """The backend no longer holds the instance this actor knew as ``generation``."""

    generation: int
    reason: str = "not listed by the backend"


class LoadOk(_Msg, frozen=True):
    """The load started as ``op`` finished; ``adopted`` when the backend already held it."""

    op: int
    adopted: bool = False


class LoadFailed(_Msg, frozen=True):
    """The load started as ``op`` failed (the policy decides whether it feeds the breaker)."""

    op: int
    error: OrchestratorError


class VerifyOk(_Msg, frozen=True):
    """Verification ``op`` saw the model listed as loaded.

    ``context_length`` is the context the backend says it loaded, when it says
    (issue 17, F5: LM Studio may fit it below what was asked).
    """

    op: int
    context_length: int | None = None


class VerifyFailed(_Msg, frozen=True):
    """Verification ``op`` gave up."""

    op: int
    error: OrchestratorError


class UnloadDone(_Msg, frozen=True):
    """Unload ``op`` finished; ``error`` is set when the backend call failed."""

    op: int
    error: OrchestratorError | None = None


class TtlObserved(_Msg, frozen=True):
    """The backend lists the instance with this idle TTL (the one it enforces)."""

    ttl_s: float


class UnloadRetry(_Msg, frozen=True):
    """The backoff armed as ``generation`` after a failed unload ended: try again."""

    generation: int


class IdleTimeout(_Msg, frozen=True):
    """The idle timer armed as ``generation`` fired."""

    generation: int


class CooldownOver(_Msg, frozen=True):
    """The breaker cooldown armed as ``generation`` ended."""

    generation: int


Message: TypeAlias = (
    EnsureLoaded
    | Release
    | Unload
    | Evict
    | ResetBreaker
    | Discovered
    | Lost
    | LoadOk
    | LoadFailed
    | VerifyOk
    | VerifyFailed
    | UnloadDone
    | UnloadRetry
    | TtlObserved
    | IdleTimeout
    | CooldownOver
)
