"""Per-instance facts inference needs: requests taken at once, and whether it is gone.

Both serve issue 16: what an instance can take, and what to do when a request
to it got no answer.

- :class:`InstanceLimits` caps the requests in flight per instance at the
  parallelism its backend knows (llama.cpp's slots). Waiters beyond it queue
  here, first come first served, holding no connection: a burst of 20 requests
  to a one-slot worker opens one connection at a time, not 20 that the server
  would only queue. Where the backend does not know (LM Studio, which queues
  requests itself), nothing is capped and nothing is awaited.
- :func:`confirm_lost` asks the backend's own truth whether an instance that
  refused or dropped a request is gone. Only a confirmed loss lets a request be
  retried on a fresh instance; a refused connection to an instance that is still
  listed is reported, never re-leased in a loop.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager, nullcontext

import trio

from orchestrator.backends.base import Backend, ConfirmsLoss, KnowsParallelism
from orchestrator.errors import OrchestratorError

__all__ = ["InstanceLimits", "confirm_lost"]

_UNLIMITED: AbstractAsyncContextManager[object] = nullcontext()


class InstanceLimits:
    """One FIFO limiter per instance identifier, sized by the backend's parallelism.

    Args:
        backend: asked (once per request, synchronously) for an instance's
            parallelism when it implements
            :class:`~orchestrator.backends.base.KnowsParallelism`.
    """

    def __init__(self, backend: Backend) -> None:
        self._parallel = backend.max_parallel if isinstance(backend, KnowsParallelism) else None
        self._slots: dict[str, tuple[int, trio.Semaphore]] = {}

    def slot(self, identifier: str) -> AbstractAsyncContextManager[object]:
        """Return what to hold while a request to ``identifier`` is in flight.

        A ``trio.Semaphore`` (FIFO) when the parallelism is known, else a no-op
        context that never awaits. A changed parallelism (a reload with other
        settings) starts a fresh limiter; requests holding the old one finish on it.
        """
        if self._parallel is None:
            return _UNLIMITED
        limit = self._parallel(identifier)
        if limit is None:
            return _UNLIMITED
        entry = self._slots.get(identifier)
        if entry is None or entry[0] != limit:
            entry = self._slots[identifier] = (limit, trio.Semaphore(limit))
        return entry[1]


async def confirm_lost(backend: Backend, identifier: str) -> str | None:
    """Return why ``identifier`` is gone by the backend's truth, or None if it is not known gone.

    A backend with :class:`~orchestrator.backends.base.ConfirmsLoss` answers
    itself (the llama.cpp backend waits briefly for the worker's exit); others
    are asked for their listing. A listing that fails proves nothing: None.
    """
    if isinstance(backend, ConfirmsLoss):
        return await backend.confirm_lost(identifier)
    try:
        loaded = await backend.list_loaded()
    except OrchestratorError:
        return None
    if any(entry.identifier == identifier for entry in loaded):
        return None
    return f"the backend no longer lists {identifier!r}"
