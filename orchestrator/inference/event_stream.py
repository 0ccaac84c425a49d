"""Decoded server-sent events of one streamed answer (see :class:`EventStream`).

A decoder returns :data:`DONE` for the ``[DONE]`` sentinel that ends a stream,
and ``None`` for an event it skips.

A connection that closes mid-stream raises :class:`~orchestrator.errors.StreamCut`
once part of the answer was handed out (it says how much), and
:class:`~orchestrator.errors.ConnectionDropped` before that: nothing was lost
then, so the request may be sent again.
"""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final, Generic, TypeVar, cast

import trio

from orchestrator.backends.http_errors import transport_errors
from orchestrator.errors import ConnectionDropped, StreamCut, excerpt
from orchestrator.inference.sse import SSEDecoder, SSEEvent

if TYPE_CHECKING:
    import httpx

__all__ = ["DONE", "EventStream"]

T = TypeVar("T")

DONE: Final = object()
"""What a decoder returns for the end of the stream."""
_DRAIN_S: Final = 1.0
_DRAIN_BYTES: Final = 1024 * 1024


class EventStream(Generic[T]):
    """Decoded items of one server-sent event stream; iterate with ``async for``.

    Obtain one from an ``InferenceClient.stream_*`` context manager; it is
    only valid inside that block.
    """

    def __init__(
        self,
        response: httpx.Response,
        decode: Callable[[SSEEvent], Any],
        *,
        what: str,
        max_event_bytes: int,
    ) -> None:
        self._bytes = response.aiter_bytes()
        self._decode = decode
        self._what = what
        self._decoder = SSEDecoder(what=what, max_event_bytes=max_event_bytes)
        self._pending: deque[SSEEvent] = deque()
        self._finished = False
        self._eof = False
        self._delivered = 0
        # httpx is imported lazily (start-up time); a response exists, so it is loaded now.
        import httpx

        self._closed_errors = (httpx.NetworkError, httpx.RemoteProtocolError)

    def __aiter__(self) -> EventStream[T]:
        return self

    async def aclose(self) -> None:
        """Stop reading (the client calls this when the ``async with`` block ends).

        What is left of the body is drained briefly first: httpcore does not
        close its inner async generators when a body is abandoned, and trio
        warns about every one the garbage collector finds.
        """
        self._finished = True
        if not self._eof:
            import httpx  # loaded already: this stream came from it

            drained = 0
            with trio.move_on_after(_DRAIN_S), contextlib.suppress(httpx.HTTPError):
                while drained < _DRAIN_BYTES:
                    try:
                        drained += len(await anext(self._bytes))
                    except StopAsyncIteration:
                        self._eof = True
                        break
        close = getattr(self._bytes, "aclose", None)
        if close is not None:
            await close()

    async def __anext__(self) -> T:
        while True:
            while self._pending:
                item = self._decode(self._pending.popleft())
                if item is DONE:
                    self._pending.clear()
                    self._finished = True
                    break
                if item is not None:
                    self._delivered += 1
                    return cast(T, item)
            if self._finished:
                raise StopAsyncIteration
            with transport_errors(self._what):
                try:
                    chunk = await anext(self._bytes)
                except StopAsyncIteration:
                    self._pending.extend(self._decoder.close())
                    self._finished = self._eof = True
                    continue
                except self._closed_errors as exc:
                    raise self._cut(exc) from exc
            self._pending.extend(self._decoder.feed(chunk))

    def _cut(self, exc: Exception) -> ConnectionDropped | StreamCut:
        """The error for a connection that closed before the stream's end."""
        self._finished = True
        why = excerpt(str(exc) or type(exc).__name__)
        if not self._delivered:
            return ConnectionDropped(
                f"{self._what}: the server closed the connection before answering ({why})"
            )
        return StreamCut(
            f"{self._what}: the streamed answer was cut after {self._delivered} event(s): "
            f"the server closed the connection mid-answer ({why}); what arrived is incomplete"
        )
