"""The slot scheduler: queues requests per model and carries out :func:`swap_policy.plan`.

Every request (a lease or an ``ensure_loaded``) passes :meth:`Scheduler.enter`
before it reaches its model's actor. With no queue anywhere and its model
holding a slot it goes straight on (the hot path costs a dict lookup); otherwise
it is queued and a single planning task decides, from a snapshot (the pool's
holders, each actor's :meth:`~orchestrator.actor.ModelActor.resident`, the
queues and the measured load times), which queued requests go on and which idle
model is evicted. Eviction is an ``Evict`` message: the victim's actor still
decides, and refuses if a lease arrived meanwhile. The scheduler writes no
model state; the pool still enforces the limits.
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Iterable

import msgspec
import structlog
import trio

from orchestrator.capacity import CapacityPool, Resident
from orchestrator.config import Config
from orchestrator.errors import ActorStopped, CapacityExhausted
from orchestrator.metrics import Metrics
from orchestrator.swap_policy import ModelView, Plan, SchedLimits, SwapReason, plan, wait_bound

__all__ = ["ModelQueue", "Scheduler", "SchedulerStatus"]

_log = structlog.get_logger("orchestrator.scheduler")

# States in which a model holding a slot takes requests (its actor joins them to the load).
_SERVING = ("LOADING", "VERIFYING", "READY")


class ModelQueue(msgspec.Struct, frozen=True, kw_only=True):
    """One model's queue for a slot, for status.

    Attributes:
        model: the model key.
        queued: requests waiting for their turn.
        oldest_wait_s: how long the oldest of them has waited.
        wait_bound_s: the wait at which a swap is forced for this model.
        closed: why this model, holding a slot, takes no new requests (it drains
            to be evicted), else None.
        batches: batches it ran while others waited for a slot.
    """

    model: str
    queued: int
    oldest_wait_s: float
    wait_bound_s: float
    closed: str | None = None
    batches: int = 0


class SchedulerStatus(msgspec.Struct, frozen=True, kw_only=True):
    """The scheduler at one instant.

    Attributes:
        policy: ``swap_aware`` or ``fifo``.
        queues: models with queued requests or a closed slot, sorted by model.
        swaps: evictions made to give a slot to another model, by reason.
    """

    policy: str
    queues: list[ModelQueue]
    swaps: dict[str, int]


class _Ticket:
    def __init__(self, arrived: float) -> None:
        self.arrived = arrived
        self.admitted = trio.Event()


class Scheduler:
    """Decides the order in which models get slots (see :mod:`orchestrator.swap_policy`).

    Args:
        config: the policy knobs and limits.
        pool: the capacity pool (who holds a slot).
        residents: a read-only snapshot of every model with an actor.
        evict: asks one model's actor to unload if idle.
        metrics: where to count swaps and queue lengths.
    """

    def __init__(
        self,
        config: Config,
        pool: CapacityPool,
        residents: Callable[[], Iterable[Resident]],
        evict: Callable[[str], None],
        metrics: Metrics,
    ) -> None:
        self._limits = SchedLimits(
            kind=config.scheduler,
            max_models=config.max_loaded_models,
            budget_bytes=config.memory_budget_bytes,
            max_wait_s=config.swap_max_wait_s,
            wait_load_factor=config.swap_wait_load_factor,
            wait_floor_s=config.swap_wait_floor_s,
            max_batches=config.swap_max_batches,
        )
        self._pool = pool
        self._residents = residents
        self._evict = evict
        self._metrics = metrics
        self._queues: dict[str, collections.deque[_Ticket]] = {}
        self._entering: collections.Counter[str] = collections.Counter()
        self._granted: set[str] = set()
        self._batches: collections.Counter[str] = collections.Counter()
        self._closed: dict[str, SwapReason] = {}
        self._swaps: collections.Counter[str] = collections.Counter()
        # Models asked to unload, with their last use then: not asked again until they
        # leave READY or are used again (the actor refused: a lease came first).
        self._evicting: dict[str, float] = {}
        self._kick = trio.Event()
        self._stopped = False

    @property
    def limits(self) -> SchedLimits:
        """The policy knobs in force."""
        return self._limits

    def kick(self) -> None:
        """Plan again soon (a model drained, freed its slot or got one)."""
        if self._queues or self._closed:
            self._kick.set()

    async def enter(self, model: str, timeout_s: float) -> None:
        """Wait (at most ``timeout_s``) until ``model`` may take this request; hold its place.

        Until the matching :meth:`leave` the request is on its way to the actor,
        so its model is not idle and is never evicted under a request just admitted.
        A plain coroutine, not a context manager: this is on every lease's path.

        Raises:
            CapacityExhausted: the scheduler did not give ``model`` a slot in time.
            ActorStopped: the orchestrator is stopping.
        """
        if self._stopped:
            raise ActorStopped("the orchestrator is shutting down")
        if self._queues or not (self._pool.holds(model) or self._free_slot()):
            await self._wait_turn(model, timeout_s)
            return
        # The hot path: nobody waits, and its model holds a slot or takes a free one (then
        # it counts as granted, so a request for another model meanwhile is planned).
        if not self._pool.holds(model):
            self._granted.add(model)
        self._entering[model] += 1

    def leave(self, model: str) -> None:
        """The request admitted by :meth:`enter` reached its actor (or gave up)."""
        self._entering[model] -= 1
        if not self._entering[model]:
            del self._entering[model]
            self.kick()

    async def _wait_turn(self, model: str, timeout_s: float) -> None:
        ticket = _Ticket(trio.current_time())
        self._queues.setdefault(model, collections.deque()).append(ticket)
        self._metrics.queued.labels(model=model).inc()
        self._kick.set()
        try:
            with trio.move_on_after(timeout_s):
                await ticket.admitted.wait()
        finally:
            if not ticket.admitted.is_set():
                self._leave(model, ticket)
        if self._stopped:
            raise ActorStopped("the orchestrator is shutting down")
        if not ticket.admitted.is_set():
            raise CapacityExhausted(model, self._pool.full_reason(model, timeout_s))

    def _leave(self, model: str, ticket: _Ticket) -> None:
        queue = self._queues[model]
        queue.remove(ticket)
        self._metrics.queued.labels(model=model).dec()
        if not queue:
            del self._queues[model]
        self._kick.set()

    async def run(self) -> None:
        """Plan whenever something changes or a wait bound passes, until :meth:`stop`."""
        wake_at: float | None = None
        while not self._stopped:
            with trio.move_on_at(wake_at if wake_at is not None else float("inf")):
                await self._kick.wait()
            self._kick = trio.Event()
            wake_at = self._step(trio.current_time())

    def stop(self) -> None:
        """Stop planning; queued requests get ``ActorStopped``."""
        self._stopped = True
        for queue in self._queues.values():
            for ticket in queue:
                ticket.admitted.set()
        self._kick.set()

    def _free_slot(self) -> bool:
        # Only where the slot count is the whole limit: a size needs the plan's budget check.
        no_budget = self._limits.budget_bytes is None
        return no_budget and not self._granted and self._pool.free_slots() > 0

    def _holds(self, model: str) -> bool:
        return self._pool.holds(model) or model in self._granted

    def _views(self, now: float) -> list[ModelView]:
        residents = {r.model: r for r in self._residents()}
        self._granted = {g for g in self._granted if not self._pool.holds(g) and self._entering[g]}
        self._evicting = {
            model: used
            for model, used in self._evicting.items()
            if (res := residents.get(model)) is not None
            and res.state == "READY"
            and res.last_used_at == used
        }
        load_s = self._metrics.load_p50(self._queues)
        # Models neither holding a slot nor waiting for one play no part in the plan.
        relevant = {m for m in residents if self._holds(m)} | set(self._queues) | self._granted
        views = []
        for model in sorted(relevant):
            res = residents.get(model)
            state = res.state if res is not None else "UNLOADED"
            idle = res is not None and res.idle and model not in self._evicting
            views.append(
                ModelView(
                    model=model,
                    holds=self._holds(model),
                    serving=state in _SERVING or model in self._granted,
                    idle=idle and not self._entering[model],
                    arrivals=tuple(t.arrived for t in self._queues.get(model, ())),
                    load_s=load_s.get(model),
                    size_bytes=(res.size_bytes if res is not None else None) or 0,
                    batches=self._batches[model],
                    closed=self._closed.get(model),
                    last_used_at=res.last_used_at if res is not None else 0.0,
                )
            )
        return views

    def _step(self, now: float) -> float | None:
        views = self._views(now)
        decided = plan(views, self._limits, now)
        self._apply(decided, views)
        return decided.wake_at

    def _apply(self, decided: Plan, views: list[ModelView]) -> None:
        others_wait = any(v.arrivals and not v.holds for v in views)
        for model in decided.grant:
            self._granted.add(model)
            self._batches[model] = 0
        for model, count in decided.admit.items():
            if others_wait and model not in decided.grant:
                self._batches[model] += 1
            queue = self._queues[model]
            for _ in range(count):
                queue.popleft().admitted.set()
                self._entering[model] += 1
            self._metrics.queued.labels(model=model).dec(count)
            if not queue:
                del self._queues[model]
        if not others_wait:
            self._batches.clear()
        self._closed = dict(decided.closed)
        if decided.evict is not None and decided.reason is not None:
            self._swaps[decided.reason] += 1
            self._metrics.swaps.labels(model=decided.evict, reason=decided.reason.value).inc()
            _log.info("swap", evict=decided.evict, reason=decided.reason.value)
            victim = next(v for v in views if v.model == decided.evict)
            self._evicting[decided.evict] = victim.last_used_at
            self._evict(decided.evict)

    def status(self) -> SchedulerStatus:
        """Return each model's queue and the swaps so far."""
        now = trio.current_time()
        views = {v.model: v for v in self._views(now)}
        queues = [
            ModelQueue(
                model=model,
                queued=len(view.arrivals),
                oldest_wait_s=round(now - view.arrivals[0], 3) if view.arrivals else 0.0,
                wait_bound_s=wait_bound(view, self._limits),
                closed=view.closed.value if view.closed is not None else None,
                batches=view.batches,
            )
            for model, view in views.items()
            if view.arrivals or view.closed is not None
        ]
        return SchedulerStatus(policy=self._limits.kind, queues=queues, swaps=dict(self._swaps))
