"""A model held under a lease while requests go to it, re-leased once if the backend lost it.

Every inference path (the MCP tools' single calls and the agent loop's rounds)
goes through :func:`hold_model`, so these rules hold for all of them:

- the lease keeps the model READY (never expired, never evicted) while it is held;
- when the backend still answers "model not loaded" (LM Studio evicted it, a
  worker died), the lease reports it lost, which sends the model back to
  UNLOADED, and the request is retried once under a fresh lease, which reloads it;
- a request that got no answer at all (connection refused, or closed before the
  answer began: a worker killed mid-request) is retried the same way, but only
  when the backend's truth confirms the instance is gone
  (:func:`~orchestrator.instances.confirm_lost`); otherwise it fails as it is;
- a stream cut mid-answer is not retried (the caller has part of it); when the
  instance is gone its error says how it ended;
- at most as many requests per instance are in flight as the backend serves at
  once (:class:`~orchestrator.instances.InstanceLimits`); the rest queue here;
- every request, and a lease that could not be taken, is counted in the
  inference metrics (a model the orchestrator does not manage is counted as
  ``(other)``) and every failure is logged; a request or lease wait cancelled
  by its caller is counted as ``cancelled``, not as an error, and not logged.

A request is an :class:`~orchestrator.inference.InferenceClient` method bound to
its request; the held model supplies the target::

    async with hold_model(orch, model, endpoint="chat") as held:
        answer = await held.send(functools.partial(client.chat, request=request))
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import TypeVar

import structlog
import trio

from orchestrator.api import Lease, Orchestrator
from orchestrator.errors import ModelNotLoaded, NotAnswered, StreamCut
from orchestrator.inference.target import InferenceTarget
from orchestrator.instances import confirm_lost

__all__ = ["HeldModel", "InferenceCall", "hold_model"]

T = TypeVar("T")
InferenceCall = Callable[[InferenceTarget], Awaitable[T]]
"""Sends one request to the instance a target names, e.g.
``functools.partial(client.chat, request=request)``."""

_log = structlog.get_logger("orchestrator.inference")


def _cancelled(exc: BaseException) -> bool:
    """Whether ``exc`` is a cancellation: ``Cancelled``, or a nursery's group of only those."""
    if isinstance(exc, BaseExceptionGroup):
        return exc.split(trio.Cancelled)[1] is None
    return isinstance(exc, trio.Cancelled)


class HeldModel:
    """A leased model that requests go to. Obtain one with :func:`hold_model`."""

    def __init__(self, orch: Orchestrator, model: str, endpoint: str) -> None:
        self._orch = orch
        self._model = model
        self._endpoint = endpoint
        self._stack: AsyncExitStack | None = None
        self._lease: Lease | None = None

    async def _acquire(self) -> Lease:
        stack = AsyncExitStack()
        try:
            lease = self._lease = await stack.enter_async_context(self._orch.lease(self._model))
        except BaseException:
            await stack.aclose()
            raise
        self._stack = stack
        return lease

    async def _release(self) -> None:
        stack, self._stack, self._lease = self._stack, None, None
        if stack is not None:
            await stack.aclose()

    @property
    def target(self) -> InferenceTarget:
        """Where requests go now: the instance under the current lease, with the model's TTL."""
        if self._lease is None:
            raise RuntimeError("the model is not held (its lease was released)")
        backend = self._orch.backend
        identifier = self._lease.identifier
        return InferenceTarget(
            model=self._model,
            identifier=identifier,
            base_url=backend.base_url(identifier),
            headers=backend.http_headers(),
            ttl=max(1, round(self._lease.status.ttl_s)),
        )

    async def send(self, call: InferenceCall[T]) -> T:
        """Run ``call`` against the leased instance; retry once on a fresh lease if it was lost.

        The call waits for a free slot of the instance first (see the module).

        Args:
            call: sends the request to the target it is given, e.g.
                ``functools.partial(client.chat, request=request)``.

        Raises:
            ModelNotLoaded: the backend dropped the model twice in a row.
            NotAnswered: no answer came back, and the instance was not gone, or was
                gone twice in a row (the message then says how it ended).
            StreamCut: a streamed answer stopped mid-way.
            OrchestratorError: the reload failed, or the request did.
        """
        for attempt in (1, 2):
            started = trio.current_time()
            outcome = "error"
            asked: InferenceTarget | None = None
            try:
                lease = self._lease or await self._acquire()
                async with self._orch.instance_limits.slot(lease.identifier):
                    asked = self.target  # after the wait: where the instance is now
                    result = await call(asked)
                outcome = "ok"
                return result
            except ModelNotLoaded as exc:
                outcome = "lost"
                await self._lost(f"inference said: {exc}")
                if attempt == 2:
                    self._log_error(attempt, exc)
                    raise
            except (NotAnswered, StreamCut) as exc:
                gone = await self._confirm_lost(asked)
                if gone is None:
                    self._log_error(attempt, exc)
                    raise
                outcome = "lost"
                await self._lost(gone)
                if attempt == 2 or isinstance(exc, StreamCut):
                    error = type(exc)(f"{exc}; the instance is gone: {gone}")
                    self._log_error(attempt, error)
                    raise error from exc
            except BaseException as exc:
                if _cancelled(exc):
                    outcome = "cancelled"  # the caller gave up (a timeout, a closed session)
                elif isinstance(exc, Exception):
                    self._log_error(attempt, exc)
                raise
            finally:
                self._count(outcome, started)
        raise AssertionError("unreachable: the second attempt returns or raises")

    async def _confirm_lost(self, asked: InferenceTarget | None) -> str | None:
        """Why the instance ``asked`` is gone by the backend's truth, or None (see the module)."""
        if asked is None:
            return None
        try:
            now = self._orch.backend.base_url(asked.identifier)
        except ModelNotLoaded:
            now = asked.base_url  # the backend's truth below says how it ended
        if now != asked.base_url:
            return f"{asked.identifier!r} is served by a new instance at {now}"
        return await confirm_lost(self._orch.backend, asked.identifier)

    async def _lost(self, reason: str) -> None:
        """Report the leased instance lost (the actor ignores a stale report) and let it go."""
        if self._lease is not None:
            self._lease.lost(reason)
        await self._release()

    def _count(self, outcome: str, started: float) -> None:
        elapsed = trio.current_time() - started
        self._orch.metrics.inference(self._model, self._endpoint, outcome, elapsed)

    def _log_error(self, attempt: int, exc: Exception) -> None:
        _log.warning(
            "inference_error",
            model=self._orch.metrics.model_label(self._model),
            endpoint=self._endpoint,
            attempt=attempt,
            error_type=type(exc).__name__,
            error=str(exc),
        )


@asynccontextmanager
async def hold_model(orch: Orchestrator, model: str, *, endpoint: str) -> AsyncIterator[HeldModel]:
    """Lease ``model`` for the block (waiting for its load); release it on exit.

    Args:
        orch: the orchestrator that owns the model.
        model: the model key.
        endpoint: the inference metrics label of the requests, e.g. ``"chat"``.

    Raises:
        OrchestratorError: as :meth:`Orchestrator.lease` (unknown model, breaker
            open ...); the failure is counted and logged like a failed request.
    """
    held = HeldModel(orch, model, endpoint)
    started = trio.current_time()
    try:
        await held._acquire()
    except BaseException as exc:
        if _cancelled(exc):
            held._count("cancelled", started)
        elif isinstance(exc, Exception):
            held._count("error", started)
            held._log_error(1, exc)
        raise
    try:
        yield held
    finally:
        await held._release()
