"""Where one inference request goes: :class:`InferenceTarget`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["InferenceTarget"]


@dataclass(frozen=True)
class InferenceTarget:
    """Where one inference request goes.

    A held model (:func:`orchestrator.hold_model`) names the instance under its
    lease; a caller without a lease may build one by hand.

    Attributes:
        model: the model key the caller asked for.
        identifier: the backend instance serving it (what requests name).
        base_url: the OpenAI-compatible endpoint, ending in ``/v1``.
        headers: headers the backend requires (e.g. its API token).
        ttl: the model's TTL in whole seconds, sent with each request so that a
            just-in-time reload by the server still unloads by itself; None
            leaves the request's own ``ttl``.
    """

    model: str
    identifier: str
    base_url: str
    headers: Mapping[str, str]
    ttl: int | None = None
