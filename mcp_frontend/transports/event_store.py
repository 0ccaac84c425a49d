"""SSE resumption for streamable HTTP: a bounded in-memory event store.

Without an event store the SDK sends SSE events with no ``id`` and no
``retry``, so a client whose connection drops mid-call (a load can take
minutes) loses every message sent meanwhile, the answer included. With one,
each event carries an id; a client that reconnects with ``GET`` and
``Last-Event-ID`` gets the events of that stream it missed, then the rest live.

Bounds: at most ``max_events`` events are kept across all streams (oldest
dropped first), so memory stays flat however long the server runs; a client
that reconnects after its events were dropped resumes from what is left of its
stream, or gets nothing if it is all gone. Event ids start with a random key
per stream, so one session cannot ask for another's events by guessing an id.
"""

from __future__ import annotations

import itertools
import secrets
from collections import OrderedDict, deque

from mcp.server.streamable_http import EventCallback, EventId, EventMessage, EventStore, StreamId
from mcp.types import JSONRPCMessage

__all__ = ["DEFAULT_MAX_EVENTS", "RETRY_INTERVAL_MS", "BoundedEventStore"]

DEFAULT_MAX_EVENTS = 4096
"""Events kept across all streams; enough for many long calls' progress and answers."""

RETRY_INTERVAL_MS = 1000
"""The ``retry`` the priming event suggests: how long a client waits before reconnecting."""


class BoundedEventStore(EventStore):
    """Keeps the last ``max_events`` SSE events for replay after a dropped connection.

    Args:
        max_events: most events kept, across all streams.
    """

    def __init__(self, max_events: int = DEFAULT_MAX_EVENTS) -> None:
        if max_events < 1:
            raise ValueError("max_events must be at least 1")
        self.max_events = max_events
        self._events: OrderedDict[EventId, tuple[StreamId, JSONRPCMessage | None]] = OrderedDict()
        self._streams: dict[StreamId, deque[EventId]] = {}
        self._keys: dict[StreamId, str] = {}
        self._seq = itertools.count(1)

    # Not __len__: the SDK tests the store for truth (``if not self._event_store``),
    # and an empty store would then count as no store at all.
    @property
    def size(self) -> int:
        """How many events are kept now."""
        return len(self._events)

    async def store_event(self, stream_id: StreamId, message: JSONRPCMessage | None) -> EventId:
        """Keep ``message`` (None: a priming event) and return its new event id."""
        key = self._keys.setdefault(stream_id, secrets.token_hex(8))
        event_id = f"{key}-{next(self._seq)}"
        self._events[event_id] = (stream_id, message)
        self._streams.setdefault(stream_id, deque()).append(event_id)
        while len(self._events) > self.max_events:
            _, (old_stream, _) = self._events.popitem(last=False)
            ids = self._streams[old_stream]
            ids.popleft()  # the oldest event overall is the oldest of its stream
            if not ids:
                del self._streams[old_stream]
                del self._keys[old_stream]
        return event_id

    async def replay_events_after(
        self, last_event_id: EventId, send_callback: EventCallback
    ) -> StreamId | None:
        """Send the events of ``last_event_id``'s stream that came after it.

        Returns:
            The stream id, or None when the id is unknown (never issued, or dropped).
        """
        found = self._events.get(last_event_id)
        if found is None:
            return None
        stream_id = found[0]
        after = False
        for event_id in list(self._streams.get(stream_id, ())):
            if after:
                message = self._events[event_id][1]
                if message is not None:  # priming events carry nothing to replay
                    await send_callback(EventMessage(message, event_id))
            after = after or event_id == last_event_id
        return stream_id
