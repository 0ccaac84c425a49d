"""The change feed: every lifecycle transition, broadcast to subscribers that never block actors.

Actors call :meth:`ChangeFeed.publish` synchronously from their receive loop.
Publishing never waits and never fails: each subscriber has a bounded buffer,
and when a slow subscriber's buffer is full its *oldest* buffered event is
dropped (the newest say where models are now). The subscriber is told: before
the next event it receives a :class:`Dropped` marker carrying how many events
it missed. See ``docs/decisions/0006-change-feed.md``.
"""

from __future__ import annotations

import collections
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TypeAlias

import msgspec
import trio

from orchestrator.lifecycle import Input, State

__all__ = ["DEFAULT_BUFFER", "ChangeFeed", "Dropped", "FeedItem", "Subscription", "TransitionEvent"]

DEFAULT_BUFFER = 256
"""Events a subscriber may fall behind by before the oldest are dropped."""


class TransitionEvent(msgspec.Struct, frozen=True, kw_only=True, tag="transition"):
    """One change of a model's state.

    Attributes:
        model: the model key.
        src: the state left.
        dst: the state entered.
        input: the fact that caused it.
        duration_s: time spent in ``src``.
        at: wall-clock time of the change (Unix seconds).
        consecutive_failures: failed loads or verifications since the last success.
        last_error: the most recent failure's message, if any.
    """

    model: str
    src: State
    dst: State
    input: Input
    duration_s: float
    at: float
    consecutive_failures: int = 0
    last_error: str | None = None


class Dropped(msgspec.Struct, frozen=True, kw_only=True, tag="dropped"):
    """Events this subscriber missed because it read too slowly (its buffer was full)."""

    count: int


FeedItem: TypeAlias = TransitionEvent | Dropped
"""What a subscription yields."""


class Subscription:
    """One subscriber's bounded view of the feed; iterate it with ``async for``.

    Iteration ends when the feed closes (the orchestrator stopped).
    """

    def __init__(self, buffer: int) -> None:
        self._items: collections.deque[TransitionEvent] = collections.deque()
        self._buffer = buffer
        self._wakeup = trio.Event()
        self.dropped = 0
        """Events dropped in total for this subscriber."""
        self._unreported = 0
        self.closed = False

    def _offer(self, event: TransitionEvent) -> None:
        if len(self._items) >= self._buffer:
            self._items.popleft()
            self.dropped += 1
            self._unreported += 1
        self._items.append(event)
        self._wakeup.set()

    def _close(self) -> None:
        self.closed = True
        self._wakeup.set()

    def get_nowait(self) -> FeedItem | None:
        """Return the next item, or None when nothing is buffered."""
        if self._unreported:
            count, self._unreported = self._unreported, 0
            return Dropped(count=count)
        if self._items:
            return self._items.popleft()
        return None

    # A plain async iterator, not an async generator: a reader cancelled between two
    # items leaves no suspended generator behind to be finalised by the garbage collector.
    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> FeedItem:
        """Return the next item, waiting for one; stop once the feed is closed and drained."""
        while True:
            item = self.get_nowait()
            if item is not None:
                return item
            if self.closed:
                raise StopAsyncIteration
            self._wakeup = trio.Event()
            await self._wakeup.wait()


class ChangeFeed:
    """Broadcasts :class:`TransitionEvent`s to any number of subscribers."""

    def __init__(self) -> None:
        self._subscribers: set[Subscription] = set()
        self.closed = False

    @property
    def subscribers(self) -> int:
        """How many subscriptions are open."""
        return len(self._subscribers)

    def publish(self, event: TransitionEvent) -> None:
        """Hand ``event`` to every subscriber; never blocks, never raises."""
        for sub in self._subscribers:
            sub._offer(event)

    @asynccontextmanager
    async def subscribe(self, *, buffer: int = DEFAULT_BUFFER) -> AsyncIterator[Subscription]:
        """Receive every event published while the block runs.

        Args:
            buffer: how many events may wait unread before the oldest are dropped.

        Raises:
            ValueError: ``buffer`` is not positive.
        """
        if buffer < 1:
            raise ValueError(f"buffer must be at least 1, got {buffer}")
        sub = Subscription(buffer)
        if self.closed:
            sub._close()
        self._subscribers.add(sub)
        try:
            yield sub
        finally:
            self._subscribers.discard(sub)

    def close(self) -> None:
        """End every subscription (after its buffered events); later ones end at once."""
        self.closed = True
        for sub in self._subscribers:
            sub._close()
