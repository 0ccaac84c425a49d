"""The supervisor: starts actors lazily, isolates them, adopts and shuts down.

One-for-one: each actor catches its own crash (see ``ModelActor.run``), fails
its pending requests with ``ActorStopped`` and leaves the registry; the next
request for that model starts a fresh actor, which adopts the model if the
backend still holds it. A crash never cancels another model's actor.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager

import structlog
import trio

from orchestrator import messages as m
from orchestrator.actor import ModelActor
from orchestrator.backend_health import BackendHealthState
from orchestrator.backends.base import Backend, LoadedModel
from orchestrator.capacity import CapacityPool, Resident
from orchestrator.catalog import Catalog
from orchestrator.config import Config
from orchestrator.errors import ActorStopped, OrchestratorError
from orchestrator.exception_groups import unwrap_group
from orchestrator.feed import ChangeFeed
from orchestrator.metrics import Metrics
from orchestrator.reconciler import Reconciler
from orchestrator.scheduler import Scheduler

__all__ = ["Supervisor", "open_supervisor"]

_log = structlog.get_logger("orchestrator.supervisor")


class _Starting:
    """A first request creating a model's actor; later requests wait for its outcome."""

    def __init__(self) -> None:
        self.done = trio.Event()
        self.error: OrchestratorError | None = None


class Supervisor:
    """Owns the actors of one orchestrator. Use :func:`open_supervisor`."""

    def __init__(
        self,
        backend: Backend,
        config: Config,
        metrics: Metrics,
        nursery: trio.Nursery,
        feed: ChangeFeed | None = None,
    ) -> None:
        self.backend = backend
        self.config = config
        self.metrics = metrics
        self.feed = feed if feed is not None else ChangeFeed()
        self._nursery = nursery
        self.catalog = Catalog(backend, config, metrics.retry)
        self.health = BackendHealthState(backend, metrics)
        self.pool = CapacityPool(
            config.max_loaded_models,
            config.memory_budget_bytes,
            self._residents,
            self._evict,
            on_change=lambda: self.scheduler.kick(),
        )
        self.scheduler = Scheduler(config, self.pool, self._residents, self._evict, metrics)
        nursery.start_soon(self.scheduler.run)
        self._actors: dict[str, ModelActor] = {}
        self._starting: dict[str, _Starting] = {}
        self._closed = False
        self.reconciler = Reconciler(
            backend,
            config.reconcile_interval_s,
            self.actors,
            self.running,
            self.discover,
            self.count_unmanaged,
        )

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called (the orchestrator is stopping or stopped)."""
        return self._closed

    def actors(self) -> list[ModelActor]:
        """Return the live actors, sorted by model."""
        return [self._actors[k] for k in sorted(self._actors)]

    def running(self, model: str) -> ModelActor | None:
        """Return ``model``'s actor if it is running (no wait, no start), else None."""
        actor = self._actors.get(model)
        if self._closed or actor is None or actor.stopped:
            return None
        return actor

    async def actor_for(self, model: str) -> ModelActor:
        """Return ``model``'s actor, starting it on first use.

        Raises:
            UnknownModel: the catalogue has no such model.
            BackendError: the catalogue could not be fetched.
            ActorStopped: the orchestrator is shutting down.
        """
        while True:
            if self._closed:
                raise ActorStopped("the orchestrator is shutting down")
            actor = self._actors.get(model)
            if actor is not None and not actor.stopped:
                return actor
            starting = self._starting.get(model)
            if starting is not None:
                await starting.done.wait()
                if starting.error is not None:
                    raise starting.error
                continue
            with self._claim(model):
                info = await self.catalog.lookup(model)
                return await self._start(model, info.size_bytes)

    @contextmanager
    def _claim(self, model: str) -> Iterator[None]:
        """Start ``model``'s actor in the block; others asking meanwhile wait for its outcome."""
        starting = self._starting[model] = _Starting()
        try:
            yield
        except OrchestratorError as exc:
            starting.error = exc
            raise
        finally:
            del self._starting[model]
            starting.done.set()

    def spawn(self, fn: Callable[..., Awaitable[object]], *args: object) -> None:
        """Run ``fn(*args)`` in the supervisor's nursery (cancelled at shutdown)."""
        self._nursery.start_soon(fn, *args)

    async def _start(self, model: str, size_bytes: int | None) -> ModelActor:
        if self._closed:
            raise ActorStopped("the orchestrator is shutting down")
        actor = ModelActor(
            model=model,
            backend=self.backend,
            config=self.config,
            pool=self.pool,
            metrics=self.metrics,
            health=self.health,
            size_bytes=size_bytes,
            on_exit=self._on_exit,
            feed=self.feed,
        )
        await self._nursery.start(actor.run)
        self._actors[model] = actor
        return actor

    async def adopt(self) -> None:
        """Take note of the models the backend already holds, best effort and bounded.

        Each becomes a foreign instance (``DISCOVERED``): it serves requests and
        counts against memory, but this server never unloads it unless
        ``manage_foreign`` is set (issue 16).
        """
        with trio.move_on_after(self.config.verify_deadline_s):
            try:
                listed = await self.backend.list_loaded()
                await self.count_unmanaged(listed)
                await self.discover(listed)
            except OrchestratorError as exc:
                _log.warning("adopt_skipped", error=str(exc))

    async def discover(self, loaded: list[LoadedModel]) -> None:
        """Post ``Discovered`` for each listed instance we did not load (the actor decides).

        Raises:
            BackendError: the catalogue could not be read.
        """
        catalogue = {info.key: info for info in await self.catalog.models()}
        for entry in loaded:
            info = catalogue.get(entry.key)
            # Only instances named as we name them can be asked for by key; a model a
            # request is starting (this may run beside requests) is left to that request.
            if info is None or entry.identifier != entry.key or entry.key in self._starting:
                continue
            actor = self.running(entry.key)
            if actor is None:
                with self._claim(entry.key):  # requests meanwhile find it DISCOVERED first
                    actor = await self._start(entry.key, info.size_bytes)
                    actor.post(m.Discovered())
            else:
                actor.post(m.Discovered())  # ignored unless it is still UNLOADED
            _log.info("discovered", model=entry.key)

    async def count_unmanaged(self, listed: list[LoadedModel]) -> None:
        """Let the listed instances no request can name hold room (another client's ``key:2``).

        Such an instance takes memory on the backend like any foreign one, but no actor
        manages it (requests name a model by its key). The pool counts it against
        ``max_loaded_models`` and the budget (its model's size) until a listing no longer
        shows it; it is never evicted.
        """
        unnamed = [x for x in listed if x.identifier != x.key]
        sizes: dict[str, int | None] = {}
        if unnamed:
            # Without the catalogue they count without a size: the count still holds.
            with contextlib.suppress(OrchestratorError):
                sizes = {info.key: info.size_bytes for info in await self.catalog.models()}
        self.pool.set_unmanaged({x.identifier: sizes.get(x.key) or 0 for x in unnamed})

    def close(self) -> None:
        """Stop accepting requests and stop every actor (each unloads what it loaded)."""
        self._closed = True
        self.scheduler.stop()
        for actor in list(self._actors.values()):
            actor.stop()

    def _on_exit(self, actor: ModelActor) -> None:
        if self._actors.get(actor.model) is actor:
            del self._actors[actor.model]

    def _residents(self) -> list[Resident]:
        return [actor.resident() for actor in self._actors.values()]

    def _evict(self, model: str) -> None:
        actor = self._actors.get(model)
        if actor is not None:
            actor.post(m.Evict())


async def _adopt_within(supervisor: Supervisor, scope: trio.CancelScope) -> None:
    with scope:
        await supervisor.adopt()


async def _reconcile_within(supervisor: Supervisor, scope: trio.CancelScope) -> None:
    with scope:
        await supervisor.reconciler.run()


@asynccontextmanager
async def open_supervisor(
    backend: Backend, config: Config, metrics: Metrics, *, adopt_in_background: bool = False
) -> AsyncIterator[Supervisor]:
    """Run a supervisor for the duration of the ``async with`` block.

    With ``adopt_in_background`` the block starts at once and adoption runs
    beside it (a request for a model being adopted meanwhile finds it loaded and
    adopts it itself); otherwise the block starts once adoption is done.

    On exit, every actor stops: pending requests get ``ActorStopped`` and models
    this orchestrator loaded are unloaded (shielded, bounded by
    ``shutdown_timeout_s``). The change feed closes once every actor has stopped.
    """
    feed = ChangeFeed()
    try:
        async with trio.open_nursery() as nursery:
            supervisor = Supervisor(backend, config, metrics, nursery, feed)
            adoption, reconciling = trio.CancelScope(), trio.CancelScope()
            nursery.start_soon(_reconcile_within, supervisor, reconciling)
            try:
                if config.adopt_loaded and adopt_in_background:
                    nursery.start_soon(_adopt_within, supervisor, adoption)
                elif config.adopt_loaded:
                    await supervisor.adopt()
                yield supervisor
            finally:
                adoption.cancel()  # a stop does not wait for a slow backend's listing
                reconciling.cancel()
                supervisor.close()
    except BaseExceptionGroup as group:
        # Actors never raise, so a lone exception is the caller's own: give it back unwrapped
        # (one level only: a group the caller raised itself stays a group).
        lone = unwrap_group(group, sole=True, depth=1)
        if lone is group:
            raise
        raise lone from lone.__cause__
    finally:
        feed.close()
