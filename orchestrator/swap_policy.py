"""Which waiting model gets the next slot, and which idle model makes room: a pure policy.

When the models asked for do not all fit (``max_loaded_models`` or the memory
budget), every swap costs a full load. :func:`plan` decides over a snapshot
(:class:`ModelView` per model, :class:`SchedLimits`, ``now``) in the style of
:func:`orchestrator.policy.decide`: no I/O, no clock, no state of its own. The
:class:`~orchestrator.scheduler.Scheduler` carries the plan out.

``swap_aware`` (the default):

- a model holding a slot keeps taking its queued requests (a *batch*: all that
  wait for it at one decision) while others wait for a slot, until it drains;
- it stops taking new ones (it is *closed*) once a request waiting for a slot
  reaches its wait bound (``fairness_bound``) or it has run ``max_batches``
  batches while others waited (``batch_limit``); it then drains and is evicted;
- a model is evicted only when idle: READY with nothing in flight or entering.
  One with queued requests is evicted only when closed;
- the next slot goes to a waiting model past its bound, else to the one with the
  oldest request (a model
  swapped out for a waiter never jumps ahead of it); all its queued requests go
  on together as its first batch.

``fifo`` (the baseline): requests are served in arrival order; the first one
for a model without a slot stops every later request (whatever its model) until
that model is loaded, so a mixed stream swaps on almost every request.

The wait bound of a model's requests is ``max_wait_s`` when set, else
``max(wait_floor_s, wait_load_factor x its measured p50 load time)``.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from typing import Literal, assert_never

from msgspec import Struct

__all__ = ["ModelView", "Plan", "SchedLimits", "SwapReason", "plan", "wait_bound"]


class SwapReason(enum.StrEnum):
    """Why a model was evicted to make room for another."""

    DRAINED = "drained"  # it had nothing left to do
    FAIRNESS_BOUND = "fairness_bound"  # a request waiting for a slot reached its bound
    BATCH_LIMIT = "batch_limit"  # it ran max_batches batches while others waited
    MEMORY = "memory"  # a slot was free but the memory budget was not
    FIFO = "fifo"  # the fifo policy: the oldest request names another model


class ModelView(Struct, frozen=True, kw_only=True):
    """What the policy knows of one model at one instant.

    Attributes:
        model: the model key.
        holds: it holds a slot (loading, loaded or unloading), or was granted one.
        serving: it can take requests now or soon (loading, verifying or READY).
        idle: READY with nothing in flight and no admitted request still entering.
        arrivals: arrival times of its queued (not yet admitted) requests, oldest first.
        load_s: its measured p50 load time, if it was ever loaded.
        size_bytes: its size, for the memory budget.
        batches: batches it ran while others waited for a slot, since it got its slot.
        closed: why a previous plan closed it, if one did (it stays closed until evicted).
        last_used_at: when it last finished a request (least recently used goes first).
    """

    model: str
    holds: bool = False
    serving: bool = False
    idle: bool = False
    arrivals: tuple[float, ...] = ()
    load_s: float | None = None
    size_bytes: int = 0
    batches: int = 0
    closed: SwapReason | None = None
    last_used_at: float = 0.0


class SchedLimits(Struct, frozen=True, kw_only=True):
    """The policy's knobs (from ``Config``)."""

    kind: Literal["swap_aware", "fifo"] = "swap_aware"
    max_models: int = 1
    budget_bytes: int | None = None
    max_wait_s: float | None = None
    wait_load_factor: float = 4.0
    wait_floor_s: float = 5.0
    max_batches: int = 8


class Plan(Struct, frozen=True, kw_only=True):
    """What to do now.

    Attributes:
        admit: how many of each model's oldest queued requests may go on now.
        grant: models given a free slot in this plan (their requests are admitted).
        evict: the idle model to unload to make room, if any.
        reason: why ``evict`` is evicted.
        closed: models holding a slot that take no new requests until evicted, and why.
        wake_at: when to plan again if nothing else happens (the next wait bound).
    """

    admit: dict[str, int]
    grant: tuple[str, ...] = ()
    evict: str | None = None
    reason: SwapReason | None = None
    closed: dict[str, SwapReason] = {}
    wake_at: float | None = None


def wait_bound(view: ModelView, limits: SchedLimits) -> float:
    """Return how long a request for ``view``'s model may wait before a swap is forced."""
    if limits.max_wait_s is not None:
        return limits.max_wait_s
    return max(limits.wait_floor_s, limits.wait_load_factor * (view.load_s or 0.0))


def plan(models: Sequence[ModelView], limits: SchedLimits, now: float) -> Plan:
    """Decide which queued requests go on, which model gets a slot and which is evicted."""
    match limits.kind:
        case "swap_aware":
            return _swap_aware(models, limits, now)
        case "fifo":
            return _fifo(models, limits)
        case _:
            assert_never(limits.kind)


class _Room:
    """The slots and bytes taken, as this plan grants them."""

    def __init__(self, models: Iterable[ModelView], limits: SchedLimits) -> None:
        self.limits = limits
        self.holders = {v.model: v for v in models if v.holds}
        # A holder that is not serving is unloading: its slot frees soon, so evict no other.
        self.freeing = any(not v.serving for v in self.holders.values())

    def fits_count(self) -> bool:
        return len(self.holders) < self.limits.max_models

    def fits(self, view: ModelView) -> bool:
        if not self.fits_count():
            return False
        budget = self.limits.budget_bytes
        # A model alone over the budget is let through: the pool refuses it with the reason.
        used = sum(v.size_bytes for v in self.holders.values())
        return budget is None or not self.holders or used + view.size_bytes <= budget

    def grant(self, view: ModelView) -> None:
        self.holders[view.model] = view

    def victim(self, candidates: Iterable[ModelView]) -> ModelView | None:
        idle = [v for v in candidates if v.idle and not self.freeing]
        return min(idle, key=lambda v: (v.last_used_at, v.model)) if idle else None

    def evict_reason(self, default: SwapReason) -> SwapReason:
        return SwapReason.MEMORY if self.fits_count() else default


def _swap_aware(models: Sequence[ModelView], limits: SchedLimits, now: float) -> Plan:
    room = _Room(models, limits)
    outside = [v for v in models if v.arrivals and not v.holds]
    due = [v for v in outside if v.arrivals[0] + wait_bound(v, limits) <= now]
    # Why each holder is closed: kept closed from before, or closed now.
    closed: dict[str, SwapReason] = {}
    if outside:
        closed = {v.model: v.closed for v in room.holders.values() if v.closed is not None}
        for v in room.holders.values():
            if v.batches >= limits.max_batches:
                closed.setdefault(v.model, SwapReason.BATCH_LIMIT)
    # Past their bound first, then oldest request first: a model just swapped out for a
    # waiter never jumps ahead of it.
    order = sorted(outside, key=lambda v: (v not in due, v.arrivals[0], v.model))
    grant: list[str] = []
    evict: ModelView | None = None
    reason: SwapReason | None = None
    for view in order:
        if room.fits(view):
            room.grant(view)
            grant.append(view.model)
            continue
        drained = [v for v in room.holders.values() if not v.arrivals and v.model not in grant]
        evict = room.victim(drained)
        reason = room.evict_reason(SwapReason.DRAINED)
        if evict is None:
            evict = room.victim(room.holders[c] for c in closed)
            reason = closed[evict.model] if evict is not None else None
        if evict is None and view in due and not closed and not room.freeing:
            # Force the swap: close the holder with the least work left, so it drains.
            busy = [v for v in room.holders.values() if v.model not in grant]
            if busy:
                chosen = min(busy, key=lambda v: (len(v.arrivals), v.last_used_at, v.model))
                closed[chosen.model] = SwapReason.FAIRNESS_BOUND
        break  # the head of the order waits for room; nobody overtakes it
    admit = {
        v.model: len(v.arrivals)
        for v in room.holders.values()
        if v.arrivals and v.model not in closed and (v.serving or v.model in grant)
    }
    bounds = [v.arrivals[0] + wait_bound(v, limits) for v in outside]
    pending = [t for t in bounds if t > now]
    return Plan(
        admit=admit,
        grant=tuple(grant),
        evict=evict.model if evict is not None else None,
        reason=reason if evict is not None else None,
        closed=closed,
        wake_at=min(pending) if pending else None,
    )


def _fifo(models: Sequence[ModelView], limits: SchedLimits) -> Plan:
    room = _Room(models, limits)
    views = {v.model: v for v in models}
    queue = sorted((t, v.model) for v in models for t in v.arrivals)
    admit: dict[str, int] = {}
    grant: list[str] = []
    evict: ModelView | None = None
    blocked = False
    for _, model in queue:
        view = views[model]
        if model in room.holders and (view.serving or model in grant):
            admit[model] = admit.get(model, 0) + 1
            continue
        if model not in room.holders and room.fits(view):
            room.grant(view)
            grant.append(model)
            admit[model] = admit.get(model, 0) + 1
            continue
        if model not in room.holders:
            evict = room.victim(v for v in room.holders.values() if v.model not in admit)
        blocked = True
        break  # strict arrival order: everything behind the first blocked request waits
    closed = {h: SwapReason.FIFO for h in room.holders if blocked and h not in admit}
    return Plan(
        admit=admit,
        grant=tuple(grant),
        evict=evict.model if evict is not None else None,
        reason=room.evict_reason(SwapReason.FIFO) if evict is not None else None,
        closed=closed,
    )
