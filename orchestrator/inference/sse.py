"""A bounded, sans-IO decoder for ``text/event-stream`` bodies.

LM Studio's chat streams are ``data: <json>`` frames separated by blank lines
and end with ``data: [DONE]``; its Responses streams add ``event: <type>``
lines. The decoder is fed raw bytes and returns whole events; it never holds
more than ``max_event_bytes`` of one event, so a server that never sends a
newline cannot exhaust memory.
"""

from __future__ import annotations

from typing import Final

import msgspec

from orchestrator.errors import BackendProtocolError, excerpt

__all__ = ["DEFAULT_MAX_EVENT_BYTES", "SSEDecoder", "SSEEvent"]

DEFAULT_MAX_EVENT_BYTES: Final = 8 * 1024 * 1024


class SSEEvent(msgspec.Struct, frozen=True, kw_only=True):
    """One dispatched event: its ``event:`` name (``""`` if none) and joined ``data:``."""

    data: str
    event: str = ""


class SSEDecoder:
    """Split a byte stream into :class:`SSEEvent` objects.

    Args:
        what: names the stream in error messages.
        max_event_bytes: the most one event (or one line) may hold.
    """

    def __init__(self, *, what: str, max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES) -> None:
        self._what = what
        self._max = max_event_bytes
        self._buffer = bytearray()
        self._event = ""
        self._data: list[str] = []
        self._size = 0

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        """Add bytes; return the events they complete.

        Raises:
            BackendProtocolError: a line or event exceeds ``max_event_bytes``.
        """
        self._buffer += chunk
        events: list[SSEEvent] = []
        while (end := self._buffer.find(b"\n")) >= 0:
            line = bytes(self._buffer[:end])
            del self._buffer[: end + 1]
            self._line(line.removesuffix(b"\r"), events)
        if len(self._buffer) > self._max:
            self._too_big(bytes(self._buffer))
        return events

    def close(self) -> list[SSEEvent]:
        """Flush at end of stream: a last event without its blank line still counts."""
        events: list[SSEEvent] = []
        if self._buffer:
            line = bytes(self._buffer).removesuffix(b"\r")
            self._buffer.clear()
            self._line(line, events)
        self._line(b"", events)
        return events

    def _line(self, line: bytes, events: list[SSEEvent]) -> None:
        if not line:
            if self._data:
                events.append(SSEEvent(data="\n".join(self._data), event=self._event))
            self._event, self._data, self._size = "", [], 0
            return
        if line.startswith(b":"):
            return  # a comment (keep-alive)
        name, _, value = line.partition(b":")
        value = value.removeprefix(b" ")
        if name == b"data":
            self._size += len(value)
            if self._size > self._max:
                self._too_big(value)
            self._data.append(value.decode("utf-8", errors="replace"))
        elif name == b"event":
            self._event = value.decode("utf-8", errors="replace")

    def _too_big(self, sample: bytes) -> None:
        raise BackendProtocolError(
            f"{self._what}: a stream event exceeds {self._max} bytes: {excerpt(sample[:400])}"
        )
