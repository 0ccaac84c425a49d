"""The reconciler: what the backend really holds corrects what the actors believe (issue 16).

Level-triggered, like a Kubernetes controller: once per ``reconcile_interval_s``
it lists the backend's instances (one ``list_loaded`` per interval, never per
request, so the lease hot path is untouched) and posts facts to the actors'
mailboxes; the actors' policy decides what they mean:

- ``Lost``: a READY (or EXPIRING) model the backend no longer lists (LM Studio
  restarted, its own TTL fired, someone unloaded it by hand);
- ``Discovered``: a listed instance, named like a model key, with no actor or
  an UNLOADED one (another client or the user loaded it): it becomes a foreign
  instance that serves requests and counts against memory;
- ``TtlObserved``: the backend lists a different idle TTL than we report.

A fact is posted only when the actor's state and generation were the same
before and after the listing, so a listing that raced a load or an unload is
never read as news. A listing that fails changes nothing (logged once per
outage). A backend that sees its instances end at once (:class:`WatchesInstances`,
the embedded llama.cpp backend) reports each end through :meth:`Reconciler.lost`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import structlog
import trio

from orchestrator import messages as m
from orchestrator.actor import ModelActor
from orchestrator.backends.base import Backend, LoadedModel, WatchesInstances
from orchestrator.errors import OrchestratorError
from orchestrator.lifecycle import State

__all__ = ["Reconciler"]

_log = structlog.get_logger("orchestrator.reconciler")

# States in which the backend must list the instance (a settled load of ours or theirs).
_HELD = (State.READY, State.EXPIRING)


class Reconciler:
    """Compares the backend's listing with the actors of one supervisor.

    Args:
        backend: the backend to list.
        interval_s: time between two listings.
        actors: returns the live actors.
        running: returns a model's running actor, if any.
        discover: posts ``Discovered`` for instances nothing of ours loaded (the
            supervisor's, as it may have to start actors).
        count_unmanaged: given each listing, lets the instances no actor can manage
            (named unlike their key) hold room.

    Attributes:
        listings: listings taken so far (its cost: one per interval).
    """

    def __init__(
        self,
        backend: Backend,
        interval_s: float,
        actors: Callable[[], list[ModelActor]],
        running: Callable[[str], ModelActor | None],
        discover: Callable[[list[LoadedModel]], Awaitable[None]],
        count_unmanaged: Callable[[list[LoadedModel]], Awaitable[None]],
    ) -> None:
        self._backend = backend
        self._interval_s = interval_s
        self._actors = actors
        self._running = running
        self._discover = discover
        self._count_unmanaged = count_unmanaged
        self._failing = False
        self.listings = 0

    async def run(self) -> None:
        """Reconcile every ``interval_s`` until cancelled (and watch, if the backend can)."""
        async with trio.open_nursery() as nursery:
            if isinstance(self._backend, WatchesInstances):
                nursery.start_soon(self._backend.watch_instances, self.lost)
            while True:
                await trio.sleep(self._interval_s)
                await self.reconcile()

    def lost(self, identifier: str, reason: str) -> None:
        """The backend saw ``identifier`` end: tell its actor (synchronous, never blocks)."""
        # Instances are named by their model key, so the identifier finds the actor; an
        # instance no actor manages is nobody's news. The current generation: the backend
        # reports only the instance it serves now (a worker we stopped is never reported).
        actor = self._running(identifier)
        if actor is not None:
            generation = actor.snapshot().generation
            _log.warning("instance_lost", model=identifier, generation=generation, reason=reason)
            actor.post(m.Lost(generation=generation, reason=reason))

    async def reconcile(self) -> None:
        """List once and post what differs; a failed listing changes nothing."""
        before = {a.model: a.snapshot() for a in self._actors()}
        try:
            listed = await self._backend.list_loaded()
        except OrchestratorError as exc:
            if not self._failing:
                _log.warning("reconcile_skipped", error=str(exc))
            self._failing = True
            return
        finally:
            self.listings += 1
        if self._failing:
            _log.info("reconcile_resumed")
        self._failing = False
        await self._count_unmanaged(listed)
        by_id = {x.identifier: x for x in listed}
        found: list[LoadedModel] = []
        for actor in self._actors():
            was, now = before.get(actor.model), actor.snapshot()
            if was is None or (was.state, was.generation) != (now.state, now.generation):
                continue  # it moved during the listing: the next round sees it settled
            entry = by_id.get(now.identifier)
            if entry is None and now.state in _HELD:
                actor.post(m.Lost(generation=now.generation))
            elif entry is not None and now.state is State.UNLOADED:
                found.append(entry)
            elif (
                entry is not None
                and now.state is State.READY
                and entry.ttl_s is not None
                and entry.ttl_s != now.ttl_s
            ):
                actor.post(m.TtlObserved(ttl_s=entry.ttl_s))
        found += [x for x in listed if x.key not in before and self._running(x.key) is None]
        found = [x for x in found if x.identifier == x.key and x.status == "loaded"]
        if found:
            try:
                await self._discover(found)
            except OrchestratorError as exc:  # the catalogue: the next round tries again
                _log.warning("discover_skipped", error=str(exc))
