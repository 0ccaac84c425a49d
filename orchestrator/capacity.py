"""Bounded memory: at most ``max_loaded_models`` (and an optional byte budget) loaded at once.

A load first reserves a slot. When none is free, the pool asks the least
recently used *idle* model to unload (an ``Evict`` message: the victim's actor
makes the final decision and refuses if a lease arrived meanwhile) and waits
for a slot to free. A model with a lease is never a candidate, nor one another
client loaded (a foreign instance counts against the limit but is never evicted
by us, issue 16). A slot is given back only once the backend confirmed the
instance gone (a failed unload keeps it). Instances no actor manages (another
client's second instance of a model, ``key:2``, or one it named itself) hold
room too, as the latest listing shows them. If nothing can
be evicted before the wait runs out, the load fails with
:class:`~orchestrator.errors.CapacityExhausted` saying who holds the room.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

import msgspec
import trio

from orchestrator.errors import CapacityExhausted

__all__ = ["CapacityPool", "Resident"]


class Resident(msgspec.Struct, frozen=True, kw_only=True):
    """What the pool knows of a model holding (or about to hold) room."""

    model: str
    state: str
    idle: bool  # READY, nothing in flight and ours: a candidate for eviction
    in_flight: int
    last_used_at: float
    foreign: bool = False  # loaded by another client: holds room, never evicted by us
    size_bytes: int | None = None


class CapacityPool:
    """Slots for loaded models, with LRU eviction of idle ones.

    Args:
        max_models: most models holding a slot at once.
        budget_bytes: optional cap on the summed sizes of slot holders.
        residents: returns a read-only snapshot of every model with an actor.
        evict: asks one model's actor to unload if idle.
        on_change: called whenever a model became idle or freed its slot (the scheduler
            plans again then).
    """

    def __init__(
        self,
        max_models: int,
        budget_bytes: int | None,
        residents: Callable[[], Iterable[Resident]],
        evict: Callable[[str], None],
        on_change: Callable[[], None] | None = None,
    ) -> None:
        self._on_change = on_change
        self._max = max_models
        self._budget = budget_bytes
        self._residents = residents
        self._evict = evict
        self._holders: dict[str, int] = {}
        self._unmanaged: dict[str, int] = {}  # identifier -> size, as last listed
        self._changed = trio.Event()
        self._waiting: dict[str, float] = {}  # model -> its wait bound, while waiting
        self._refused: dict[str, str] = {}  # model -> why its last reservation failed

    def holds(self, model: str) -> bool:
        """Whether ``model`` holds a slot."""
        return model in self._holders

    def free_slots(self) -> int:
        """How many more models may take a slot now (by count; the budget aside)."""
        return self._max - len(self._holders) - len(self._unmanaged)

    def _fits(self, model: str, size: int) -> bool:
        others = [v for k, v in self._holders.items() if k != model]
        others += self._unmanaged.values()
        if len(others) + 1 > self._max:
            return False
        return self._budget is None or sum(others) + size <= self._budget

    async def reserve(self, model: str, size_bytes: int | None, wait_s: float) -> None:
        """Take a slot for ``model``, evicting idle models as needed.

        Raises:
            CapacityExhausted: no slot freed within ``wait_s``.
        """
        size = size_bytes or 0
        if self._budget is not None and size > self._budget:
            raise CapacityExhausted(
                model,
                f"model {model!r} needs {size} bytes, more than the whole memory budget "
                f"({self._budget} bytes); raise memory_budget_bytes",
            )
        self._waiting[model] = wait_s
        self._refused.pop(model, None)
        try:
            with trio.move_on_after(wait_s):
                while not self._fits(model, size):
                    self._evict_one(model)
                    await self._changed.wait()
                self._holders[model] = size
                return
        finally:
            del self._waiting[model]
        # Kept so a caller whose own timeout ends at the same instant still learns why.
        self._refused[model] = self._why_full(model, wait_s)
        raise CapacityExhausted(model, self._refused[model])

    def waiting_reason(self, model: str) -> str | None:
        """Why ``model``'s load is waiting for room, or ``None`` if it is not."""
        wait_s = self._waiting.get(model)
        return self._refused.get(model) if wait_s is None else self._why_full(model, wait_s)

    def full_reason(self, model: str, wait_s: float) -> str:
        """Say who holds the room ``model`` waited ``wait_s`` for (for a refusal)."""
        return self._why_full(model, wait_s)

    def adopt(self, model: str, size_bytes: int | None) -> None:
        """Record a model the backend already holds (it may exceed the limit until evicted)."""
        self._holders[model] = size_bytes or 0

    def set_unmanaged(self, instances: Mapping[str, int]) -> None:
        """Record the instances no actor manages (identifier -> size), replacing the last set.

        They hold room until a listing no longer shows them; they are never evicted.
        """
        gone = self._unmanaged.keys() - instances.keys()
        self._unmanaged = dict(instances)
        if gone:
            self.changed()

    def release(self, model: str) -> None:
        """Free ``model``'s slot, if it holds one."""
        if self._holders.pop(model, None) is not None:
            self.changed()

    def changed(self) -> None:
        """Wake loads waiting for room (a model became idle or freed its slot)."""
        if self._on_change is not None:
            self._on_change()
        if self._waiting:
            self._changed.set()
            self._changed = trio.Event()

    def _evict_one(self, model: str) -> None:
        idle = [r for r in self._residents() if r.idle and r.model != model]
        idle = [r for r in idle if r.model in self._holders]
        if idle:
            self._evict(min(idle, key=lambda r: r.last_used_at).model)

    def _why_full(self, model: str, wait_s: float) -> str:
        busy = [r for r in self._residents() if r.model in self._holders and r.model != model]
        holders = ", ".join(
            [
                f"{r.model} ({r.state}, {r.in_flight} in flight"
                + (", loaded by another client)" if r.foreign else ")")
                for r in busy
            ]
            + [f"{name} (loaded by another client)" for name in sorted(self._unmanaged)]
        ) or ", ".join(sorted(self._holders))
        limit = f"max_loaded_models={self._max}"
        if self._budget is not None:
            limit += f", memory_budget_bytes={self._budget}"
        return (
            f"no room to load {model!r} within {wait_s:g}s: {limit} is held by models in use "
            f"({holders}); retry when they finish or raise the limit"
        )
