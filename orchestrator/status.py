"""The public snapshot of one model: :class:`ModelStatus`."""

from __future__ import annotations

import enum

import msgspec

from orchestrator.lifecycle import State

__all__ = ["ModelStatus", "Owner", "context_warning"]


class Owner(enum.StrEnum):
    """Who a loaded instance belongs to (issue 16; docs/architecture.md, "Ownership").

    Only what this server owns is ever unloaded by it (idle TTL, eviction,
    ``unload_model``): ``OURS`` and ``ADOPTED``. A ``FOREIGN`` instance (loaded
    by another client or by hand, including those found at start) still serves
    requests and counts against memory, but is left to whoever loaded it.
    """

    OURS = "ours"  # this process loaded it
    FOREIGN = "foreign"  # someone else loaded it; never unloaded by us
    ADOPTED = "adopted"  # someone else loaded it; managed by choice (manage_foreign)


class ModelStatus(msgspec.Struct, frozen=True, kw_only=True):
    """A model's state at one instant, as its actor last settled it.

    Attributes:
        model: the model key.
        state: the lifecycle state.
        identifier: the backend instance identifier (what inference names).
        ttl_s: the idle TTL in force.
        expires_in_s: seconds until idle expiry, when READY and idle; else None.
        in_flight: requests (leases) currently using the model.
        consecutive_failures: failed loads or verifications since the last success.
        retry_after_s: seconds until the breaker allows a probe, when open.
        last_error: the most recent failure's message, if any.
        generation: increases with every load; tells a stale report from a fresh one.
        context_length: the context the backend reports it loaded, when it says.
        warning: set when the backend loaded less context than the load asked for
            (LM Studio fits it to memory silently); else None.
        owner: who the loaded instance belongs to (see :class:`Owner`); None when
            nothing is loaded.
    """

    model: str
    state: State
    identifier: str
    ttl_s: float
    expires_in_s: float | None = None
    in_flight: int = 0
    consecutive_failures: int = 0
    retry_after_s: float | None = None
    last_error: str | None = None
    generation: int = 0
    context_length: int | None = None
    warning: str | None = None
    owner: Owner | None = None


def context_warning(model: str, asked: int | None, loaded: int | None) -> str | None:
    """Say so when the backend loaded ``model`` with less context than was asked.

    LM Studio 0.4.12+ fits the context to memory and may silently load less
    than requested (issue 17, F5; BT#1902, BT#2174).

    Args:
        model: the model key.
        asked: the context length the load asked for, if any.
        loaded: the context length the backend reports it loaded, if it says.

    Returns:
        The warning text, or None when nothing was fitted down (or it is unknown).
    """
    if asked is None or loaded is None or loaded >= asked:
        return None
    return (
        f"model {model!r} was loaded with a context of {loaded} tokens, less than the "
        f"{asked} asked for (the backend fitted it to memory); longer prompts fail: "
        "unload it and load it with a context that fits"
    )
