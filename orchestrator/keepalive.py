"""Refresh a backend's own idle TTL while a lease holds the model (issue 17, F10).

The orchestrator never expires a leased model, but a backend with its own
idle timer (LM Studio, :class:`~orchestrator.backends.base.KeepsAlive`) does,
between the lease's requests. :func:`keep_alive_while_held` pokes the instance
every half TTL for as long as it runs; the lease cancels it on release.
"""

from __future__ import annotations

import structlog
import trio

from orchestrator.backends.base import Backend, KeepsAlive, ModelInfo

__all__ = ["keep_alive_while_held", "refresh_interval"]

MIN_INTERVAL_S = 0.5
"""Never poke more often than this, whatever the TTL."""

_log = structlog.get_logger("orchestrator.keepalive")


def refresh_interval(ttl_s: float) -> float:
    """Half the TTL (at least :data:`MIN_INTERVAL_S`): two chances before it runs out."""
    return max(MIN_INTERVAL_S, ttl_s / 2)


async def keep_alive_while_held(
    scope: trio.CancelScope, backend: Backend, info: ModelInfo, identifier: str, ttl_s: float
) -> None:
    """Until ``scope`` is cancelled, refresh ``identifier``'s backend TTL every half TTL.

    Returns at once for a backend without its own TTL to refresh.
    """
    if not isinstance(backend, KeepsAlive):
        return
    interval = refresh_interval(ttl_s)
    with scope:
        while True:
            await trio.sleep(interval)
            _log.debug("keep_alive", identifier=identifier, ttl_s=ttl_s)
            await backend.keep_alive(info, identifier, ttl_s)
