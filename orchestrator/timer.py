"""A restartable timer for an actor: one task whose deadline moves, never a task per arming.

An actor re-arms its idle timer on every lease it ends; starting and cancelling
a task each time would cost far more than moving a cancel scope's deadline.
The timer knows nothing of actors: it calls ``fire(generation)`` with the
generation it was armed with, and the actor's policy drops a stale one.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import trio

__all__ = ["RestartableTimer"]


class RestartableTimer:
    """Calls ``fire(generation)`` once the armed deadline passes.

    Args:
        fire: called (synchronously, from the timer's task) with the generation
            the timer was last armed with; it must not block.
    """

    def __init__(self, fire: Callable[[int], None]) -> None:
        self._fire = fire
        self._deadline = math.inf
        self._generation = 0
        self._scope: trio.CancelScope | None = None

    def arm(self, deadline: float | None, generation: int) -> None:
        """Fire at ``deadline`` (trio time) with ``generation``; ``None`` disarms."""
        self._deadline = math.inf if deadline is None else deadline
        self._generation = generation
        if self._scope is not None:
            self._scope.deadline = self._deadline

    async def run(self) -> None:
        """Serve the timer until cancelled (run it in the owner's nursery)."""
        while True:
            with trio.CancelScope(deadline=self._deadline) as scope:
                self._scope = scope
                await trio.sleep_forever()
            self._scope = None
            self._deadline = math.inf
            self._fire(self._generation)
