"""The facade: what the MCP frontend and users call.

Every call validates its arguments first (nothing invalid reaches an actor or
the backend), then talks to the model's actor through its mailbox and waits
for the reply under a bound.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import structlog
import trio

from orchestrator import messages as m
from orchestrator.actor import ModelActor
from orchestrator.backend_health import HealthSnapshot
from orchestrator.backends.base import Backend, KeepsAlive, ModelInfo
from orchestrator.config import Config
from orchestrator.downloads import DownloadManager
from orchestrator.errors import (
    ActorStopped,
    CapacityExhausted,
    InvalidRequest,
    OrchestratorError,
    Overloaded,
    WaitTimeout,
)
from orchestrator.feed import DEFAULT_BUFFER, Subscription
from orchestrator.instances import InstanceLimits
from orchestrator.keepalive import keep_alive_while_held
from orchestrator.lifecycle import State
from orchestrator.metrics import Metrics
from orchestrator.names import validate_model_name
from orchestrator.scheduler import SchedulerStatus
from orchestrator.status import ModelStatus
from orchestrator.supervisor import Supervisor, open_supervisor

__all__ = ["Lease", "Orchestrator", "open_orchestrator"]

_log = structlog.get_logger("orchestrator.api")


class Lease:
    """A model held READY for the duration of an ``async with orch.lease(...)`` block.

    Attributes:
        status: the model's status when the lease was granted.
    """

    def __init__(self, actor: ModelActor, status: ModelStatus) -> None:
        self._actor = actor
        self.status = status

    @property
    def identifier(self) -> str:
        """The backend instance identifier to name in inference requests."""
        return self.status.identifier

    def lost(self, reason: str = "the backend reported the model as not loaded") -> None:
        """Report that the backend no longer has the model (e.g. inference said "not found").

        The actor moves it to UNLOADED (``LOST``) so the next request reloads it.
        A report about an older load than the current one is ignored.
        """
        self._actor.post(m.Lost(generation=self.status.generation, reason=reason))


class Orchestrator:
    """Model lifecycle for callers. Obtain one with :func:`open_orchestrator`."""

    def __init__(self, supervisor: Supervisor) -> None:
        self._sup = supervisor
        self.instance_limits = InstanceLimits(supervisor.backend)
        """Requests in flight per instance, capped where the backend knows its parallelism."""
        self.downloads = DownloadManager(
            supervisor.backend, supervisor.catalog, supervisor.config, supervisor.spawn
        )
        """Model downloads: start (single-flight per source), status, wait, cancel; refused
        unless ``allow_downloads`` is on and the backend can download."""
        # Once, not per lease: a runtime Protocol check, the catalogue lookup and a task
        # per lease cost more than the rest of a lease together, for backends that need none.
        self._keeps_alive = isinstance(supervisor.backend, KeepsAlive)

    @property
    def config(self) -> Config:
        """The configuration in force."""
        return self._sup.config

    @property
    def backend(self) -> Backend:
        """The backend models are loaded on (for inference URLs and health)."""
        return self._sup.backend

    @property
    def metrics(self) -> Metrics:
        """This orchestrator's metrics."""
        return self._sup.metrics

    def backend_health(self) -> HealthSnapshot:
        """The backend's health as last seen: one state, apart from each model's breaker."""
        return self._sup.health.snapshot()

    @property
    def stopped(self) -> bool:
        """Whether the orchestrator is shutting down or has stopped (requests are refused)."""
        return self._sup.closed

    async def catalog(self, *, refresh: bool = False) -> list[ModelInfo]:
        """Return the models the backend offers (cached for ``catalog_ttl_s``)."""
        return await self._sup.catalog.models(refresh=refresh)

    async def ensure_loaded(
        self,
        model: str,
        *,
        ttl_s: float | None = None,
        timeout_s: float | None = None,
        context_length: int | None = None,
    ) -> ModelStatus:
        """Make ``model`` READY and return its status.

        Concurrent calls for one model share one load. ``ttl_s`` sets the idle
        TTL (clamped to ``max_ttl_s``); the TTL counts from now. ``context_length``
        is passed to the backend when this call starts the load; a loaded model
        keeps its context (unload it first to change it).

        Raises:
            InvalidModelName, InvalidRequest: bad arguments; nothing was changed.
            UnknownModel: the backend does not offer ``model``.
            ModelUnavailable: verification failed, the breaker is open, there is no
                capacity, or the wait timed out.
            BackendError: the backend failed the load (its own error, kept as is, e.g.
                ``BackendRejected``) or the catalogue could not be read.

        Cancellation: cancelling the caller drops only its wait; the load goes on.
        """
        _actor, status = await self._ensure(
            model, lease=False, ttl_s=ttl_s, timeout_s=timeout_s, context_length=context_length
        )
        return status

    @asynccontextmanager
    async def lease(
        self, model: str, *, ttl_s: float | None = None, timeout_s: float | None = None
    ) -> AsyncIterator[Lease]:
        """Hold ``model`` READY for the block: it is never expired or evicted meanwhile.

        The request counts as in flight until the block exits; the idle TTL
        restarts from then. A backend with its own idle TTL (LM Studio) has it
        refreshed every half TTL meanwhile, so a long block (an agent run) is not
        unloaded between its requests. Raises as :meth:`ensure_loaded`.
        """
        actor, status = await self._ensure(model, lease=True, ttl_s=ttl_s, timeout_s=timeout_s)
        keeping = trio.CancelScope()
        try:
            info = await self._catalog_entry(status.model) if self._keeps_alive else None
            if info is not None:
                # The backend's own idle TTL runs between our requests (F10). The task
                # lives in the supervisor's nursery: callers may exit leases out of
                # nesting order (an AsyncExitStack), which a nursery here would forbid.
                self._sup.spawn(
                    keep_alive_while_held,
                    keeping,
                    self.backend,
                    info,
                    status.identifier,
                    status.ttl_s,
                )
            yield Lease(actor, status)
        finally:
            keeping.cancel()
            actor.post(m.Release())

    async def _catalog_entry(self, model: str) -> ModelInfo | None:
        try:
            return next((i for i in await self.catalog() if i.key == model), None)
        except OrchestratorError:
            return None  # no keep-alive then; the lease itself still holds

    async def unload(self, model: str) -> ModelStatus:
        """Unload ``model`` now and return its status.

        A model we believe unloaded is checked against the backend first, so one
        loaded meanwhile by someone else is answered as such, never as UNLOADED
        while it stays loaded (issue 16).

        Raises:
            ModelBusy: requests are in flight, or the model is still loading.
            NotOwned: another client (or the user) loaded it; it is left loaded.
            BackendError: the backend failed to unload (the model may still be loaded;
                the unload is retried in the background and keeps its slot).
        """
        name = validate_model_name(model)
        actor = await self._sup.actor_for(name)
        if actor.snapshot().state is State.UNLOADED:
            await self._sup.reconciler.reconcile()
        return await self._ask(
            actor, lambda reply: m.Unload(reply=reply), self.config.unload_timeout_s * 2
        )

    async def reset_breaker(self, model: str) -> ModelStatus:
        """Close ``model``'s circuit breaker by hand and forget its failures."""
        name = validate_model_name(model)
        actor = await self._sup.actor_for(name)
        return await self._ask(actor, lambda reply: m.ResetBreaker(reply=reply), 30.0)

    def status(self) -> list[ModelStatus]:
        """Return a snapshot of every model this orchestrator manages, sorted by model."""
        return [actor.snapshot() for actor in self._sup.actors()]

    def scheduler_status(self) -> SchedulerStatus:
        """Return the queue per model waiting for a slot and the swaps so far (by reason)."""
        return self._sup.scheduler.status()

    @asynccontextmanager
    async def watch(self, *, buffer: int = DEFAULT_BUFFER) -> AsyncIterator[Subscription]:
        """Receive every state change (a :class:`~orchestrator.feed.TransitionEvent`) from now on.

        Iterate the subscription with ``async for``; it ends when the orchestrator
        stops. Actors never wait for a watcher: if more than ``buffer`` events are
        unread, the oldest are dropped and a :class:`~orchestrator.feed.Dropped`
        item with their count comes next. Take :meth:`status` after subscribing
        for the starting point.

        Raises:
            ValueError: ``buffer`` is not positive.
        """
        async with self._sup.feed.subscribe(buffer=buffer) as sub:
            yield sub

    # -- internals --

    def _check_ttl(self, ttl_s: float | None) -> float | None:
        if ttl_s is None:
            return None
        if not isinstance(ttl_s, int | float) or math.isnan(ttl_s) or ttl_s <= 0:
            raise InvalidRequest(f"ttl_s must be a positive number of seconds, got {ttl_s!r}")
        if ttl_s > self.config.max_ttl_s:
            _log.warning("ttl_clamped", requested_s=ttl_s, max_ttl_s=self.config.max_ttl_s)
            return self.config.max_ttl_s
        return float(ttl_s)

    def _check_timeout(self, timeout_s: float | None) -> float:
        if timeout_s is None:
            return self.config.request_timeout_s
        if not isinstance(timeout_s, int | float) or math.isnan(timeout_s) or timeout_s <= 0:
            raise InvalidRequest(
                f"timeout_s must be a positive number of seconds, got {timeout_s!r}"
            )
        return float(timeout_s)

    async def _ensure(
        self,
        model: str,
        *,
        lease: bool,
        ttl_s: float | None,
        timeout_s: float | None,
        context_length: int | None = None,
    ) -> tuple[ModelActor, ModelStatus]:
        name = validate_model_name(model)
        if context_length is not None and context_length < 1:
            raise InvalidRequest(f"context_length must be at least 1, got {context_length}")
        ttl = self._check_ttl(ttl_s)
        timeout = self._check_timeout(timeout_s)
        started = trio.current_time()
        outcome = "cancelled"
        try:
            # The hot path (a running actor) skips the cancel scope the catalogue wait needs.
            actor = self._sup.running(name)
            if actor is None:
                with trio.move_on_after(timeout):
                    actor = await self._sup.actor_for(name)
            if actor is None:
                raise WaitTimeout(name, f"timed out after {timeout:g}s reading the model catalogue")
            # The scheduler decides when a model without a slot gets one (issue 22).
            await self._sup.scheduler.enter(name, self._remaining(timeout, started))
            try:
                status = await self._ask(
                    actor,
                    lambda reply: m.EnsureLoaded(
                        reply=reply,
                        lease=lease,
                        ttl_s=ttl,
                        wait_s=timeout,
                        context_length=context_length,
                    ),
                    self._remaining(timeout, started),
                    lease=lease,
                )
            finally:
                self._sup.scheduler.leave(name)
            outcome = "ok"
            return actor, status
        except WaitTimeout:
            outcome = "timeout"
            raise
        except OrchestratorError:
            outcome = "error"
            raise
        finally:
            self.metrics.waited(name, outcome, trio.current_time() - started)

    @staticmethod
    def _remaining(timeout: float, started: float) -> float:
        return max(0.0, timeout - (trio.current_time() - started))

    async def _ask(
        self,
        actor: ModelActor,
        make: Callable[[m.ReplyChannel], m.Message],
        timeout: float,
        *,
        lease: bool = False,
    ) -> ModelStatus:
        send, recv = trio.open_memory_channel[m.Reply](1)
        with recv:
            queued = False
            try:
                with trio.fail_after(timeout):
                    await actor.submit(make(send))
                    queued = True
                    result = await recv.receive()
            except trio.TooSlowError:
                if not queued:
                    raise Overloaded(
                        actor.model,
                        f"model {actor.model!r}'s mailbox stayed full (mailbox_size="
                        f"{self.config.mailbox_size}) for {timeout:g}s; retry shortly",
                    ) from None
                self._reclaim(actor, recv, lease)
                reason = self._sup.pool.waiting_reason(actor.model)
                if reason is not None:
                    raise CapacityExhausted(actor.model, reason) from None
                if not self._sup.health.up:  # the load waits for the backend: say so
                    raise self._sup.health.error() from None
                state = actor.snapshot().state.value
                raise WaitTimeout(
                    actor.model,
                    f"model {actor.model!r} was not ready within {timeout:g}s (it is {state}); "
                    "the load goes on: call again to join it",
                ) from None
            except trio.EndOfChannel:
                raise ActorStopped(f"the actor for {actor.model!r} stopped") from None
            except BaseException:
                self._reclaim(actor, recv, lease)
                raise
        if isinstance(result, OrchestratorError):
            raise result
        return result

    @staticmethod
    def _reclaim(actor: ModelActor, recv: trio.MemoryReceiveChannel[m.Reply], lease: bool) -> None:
        # A reply may have landed between the timeout and now: a granted lease
        # nobody will use must be given back, or the model could never expire.
        try:
            late = recv.receive_nowait()
        except (trio.WouldBlock, trio.EndOfChannel):
            return
        if lease and isinstance(late, ModelStatus):
            actor.post(m.Release())


@asynccontextmanager
async def open_orchestrator(
    backend: Backend,
    config: Config | None = None,
    *,
    metrics: Metrics | None = None,
    adopt_in_background: bool = False,
) -> AsyncIterator[Orchestrator]:
    """Run an orchestrator over ``backend`` for the duration of the ``async with`` block.

    Args:
        backend: where models are loaded.
        config: policies and limits; ``Config()`` defaults when omitted.
        metrics: where to count; a private registry when omitted.
        adopt_in_background: do not wait for the adoption of models the backend
            already holds before the block starts (a server answering its clients
            at once, even when the backend is slow or silent).

    On exit (normal, error or cancellation) running downloads are cancelled,
    every pending request fails with ``ActorStopped`` and every model this
    orchestrator loaded is unloaded, shielded and bounded by
    ``shutdown_timeout_s``. The backend itself is not closed: whoever made it
    closes it.
    """
    config = config if config is not None else Config()
    async with open_supervisor(
        backend, config, metrics or Metrics(), adopt_in_background=adopt_in_background
    ) as supervisor:
        orch = Orchestrator(supervisor)
        try:
            yield orch
        finally:
            orch.downloads.close()  # jobs run in the supervisor's nursery: end them first
