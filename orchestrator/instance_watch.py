"""Instance deaths the backend sees at once, posted to the model's actor as ``LOST`` (issue 16).

A backend that owns its model servers (the embedded llama.cpp backend, through
:class:`~orchestrator.backends.base.WatchesInstances`) learns of a worker's
death from the process itself. :func:`start_instance_watch` runs its watch
under the supervisor and turns each report into a ``Lost`` fact for the actor
of that instance, so the model leaves READY within milliseconds, not on the
next request or the idle TTL.

This is the event-driven half of the reconciler; the periodic listing that
catches what no process reports (LM Studio dropping a model) belongs beside it.
"""

from __future__ import annotations

from collections.abc import Callable

import structlog
import trio

from orchestrator import messages as m
from orchestrator.actor import ModelActor
from orchestrator.backends.base import Backend, WatchesInstances

__all__ = ["start_instance_watch"]

_log = structlog.get_logger("orchestrator.instance_watch")


def start_instance_watch(
    backend: Backend, running: Callable[[str], ModelActor | None], nursery: trio.Nursery
) -> trio.CancelScope:
    """Watch ``backend``'s instances in ``nursery``; cancel the returned scope to stop.

    Args:
        backend: the backend; one that cannot watch is left alone (the scope is
            returned all the same).
        running: the running actor of a model, or None (``Supervisor.running``).
        nursery: the supervisor's nursery.
    """
    scope = trio.CancelScope()
    if isinstance(backend, WatchesInstances):
        nursery.start_soon(_watch, backend, running, scope)
    return scope


async def _watch(
    backend: WatchesInstances,
    running: Callable[[str], ModelActor | None],
    scope: trio.CancelScope,
) -> None:
    def lost(identifier: str, reason: str) -> None:
        # Instances are named by their model key (see ModelActor), so the identifier
        # finds the actor; an instance no actor manages is nobody's news.
        actor = running(identifier)
        if actor is None:
            return
        generation = actor.snapshot().generation
        _log.warning("instance_lost", model=identifier, generation=generation, reason=reason)
        # The current generation: the backend reports only the instance it serves now
        # (a worker we stopped, or one replaced since, is never reported).
        actor.post(m.Lost(generation=generation, reason=reason))

    with scope:
        await backend.watch_instances(lost)
