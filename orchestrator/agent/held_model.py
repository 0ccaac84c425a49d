"""The agent's model: leased for the whole run, re-leased once when the backend lost it.

A lease keeps the model READY (never expired, never evicted) while the agent
works. If the backend still answers "model not loaded" (LM Studio evicted it,
a worker died), the lease reports it lost, which sends the model back to
UNLOADED; the request is then retried once under a fresh lease, which reloads
it. This is the same rule the MCP frontend applies to single inference calls.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import TypeVar

import trio

from orchestrator.api import Lease, Orchestrator
from orchestrator.errors import ModelNotLoaded

__all__ = ["HeldModel", "Target", "hold_model"]

T = TypeVar("T")


@dataclass(frozen=True)
class Target:
    """Where one inference request goes.

    Attributes:
        identifier: the backend instance serving the model (what requests name).
        base_url: the OpenAI-compatible endpoint, ending in ``/v1``.
        headers: headers the backend requires (e.g. its API token).
        ttl: the model's TTL in whole seconds, sent with requests so that a
            just-in-time reload by the server still unloads by itself.
    """

    identifier: str
    base_url: str
    headers: Mapping[str, str]
    ttl: int


class HeldModel:
    """A leased model that requests go to. Obtain one with :func:`hold_model`."""

    def __init__(self, orch: Orchestrator, model: str) -> None:
        self._orch = orch
        self._model = model
        self._stack: AsyncExitStack | None = None
        self._lease: Lease | None = None

    async def _acquire(self) -> None:
        stack = AsyncExitStack()
        self._lease = await stack.enter_async_context(self._orch.lease(self._model))
        self._stack = stack

    async def _release(self) -> None:
        stack, self._stack, self._lease = self._stack, None, None
        if stack is not None:
            await stack.aclose()

    def _target(self, lease: Lease) -> Target:
        backend = self._orch.backend
        return Target(
            identifier=lease.identifier,
            base_url=backend.base_url(lease.identifier),
            headers=backend.http_headers(),
            ttl=max(1, round(lease.status.ttl_s)),
        )

    async def send(self, call: Callable[[Target], Awaitable[T]], *, endpoint: str) -> T:
        """Run ``call`` against the leased instance; retry once on a fresh lease if it was lost.

        Every attempt is counted in the inference metrics under ``endpoint``.

        Raises:
            ModelNotLoaded: the backend dropped the model twice in a row.
            OrchestratorError: the reload failed, or the request did.
        """
        metrics = self._orch.metrics
        for attempt in (1, 2):
            if self._lease is None:
                await self._acquire()
            assert self._lease is not None
            started = trio.current_time()
            outcome = "error"
            try:
                result = await call(self._target(self._lease))
                outcome = "ok"
                return result
            except ModelNotLoaded as exc:
                outcome = "lost"
                self._lease.lost(f"inference said: {exc}")
                await self._release()
                if attempt == 2:
                    raise
            finally:
                metrics.inference(self._model, endpoint, outcome, trio.current_time() - started)
        raise AssertionError("unreachable: the second attempt returns or raises")


@asynccontextmanager
async def hold_model(orch: Orchestrator, model: str) -> AsyncIterator[HeldModel]:
    """Lease ``model`` for the block (waiting for its load); release it on exit.

    Raises:
        OrchestratorError: as :meth:`Orchestrator.lease` (unknown model, breaker open ...).
    """
    held = HeldModel(orch, model)
    await held._acquire()
    try:
        yield held
    finally:
        await held._release()
