"""The public snapshot of one model: :class:`ModelStatus`."""

from __future__ import annotations

import msgspec

from orchestrator.lifecycle import State

__all__ = ["ModelStatus"]


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
