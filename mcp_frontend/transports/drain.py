"""Stopping answers everyone: every call in flight gets a JSON-RPC error before the server exits.

Without this, a SIGTERM or SIGINT cancelled the transport with the handlers,
and 0 of 6 calls in flight got any answer (issue 16). :class:`Drain` is the
server's outermost request middleware. When the server stops (a signal, or
stdin closing), :meth:`Drain.stop`:

1. refuses every new request with :data:`SERVER_STOPPING` at once;
2. cancels the handlers in flight (each answers the same error: a load it was
   waiting for is the actor's, not the caller's, and is cancelled or unloaded
   by the orchestrator's own stop);
3. waits, bounded by ``shutdown_timeout_s``, until the transport has written
   those answers: over stdio the writer reports each response id it writes
   (:meth:`Drain.written`), over HTTP :meth:`Drain.asgi` counts the requests
   still open (a POST ends once its answer is sent).

Only then is the transport torn down, the orchestrator stopped (it unloads
what it loaded) and the backend closed.
"""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import structlog
import trio
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.shared.exceptions import MCPError
from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = ["SERVER_STOPPING", "Drain"]

SERVER_STOPPING = -32000
"""The JSON-RPC error code of a call the stopping server did not complete.

In the implementation-defined server-error range; the SDK answers a request it
drops at shutdown with the same code ("Connection closed")."""

_log = structlog.get_logger("mcp_frontend.shutdown")


class Drain:
    """Tracks the calls in flight and answers them all when the server stops.

    Args:
        timeout_s: the shutdown bound (``shutdown_timeout_s``), counted from :meth:`stop`.
    """

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self.reason: str | None = None
        self.drained = trio.Event()
        """Set once every call in flight at the stop was answered (or the bound ran out)."""
        self._deadline = float("inf")
        self._calls: set[trio.CancelScope] = set()  # the handlers in flight
        self._unwritten: set[Any] = set()  # ids answered with the stop error, not yet written
        self._open_http = 0
        self._changed = trio.Event()
        self._readers: set[trio.CancelScope] = set()
        self.reports_writes = False
        """Set by a transport that calls :meth:`written` for every message it writes (stdio)."""

    @property
    def stopping(self) -> bool:
        """Whether :meth:`stop` was called."""
        return self.reason is not None

    def remaining(self, floor: float = 0.0) -> float:
        """Seconds left of the shutdown bound (all of it before the stop), at least ``floor``."""
        if self.reason is None:
            return max(self.timeout_s, floor)
        return max(self._deadline - trio.current_time(), floor)

    def message(self) -> str:
        """The error text a call gets when the server stops before answering it."""
        return (
            f"the server is stopping ({self.reason}); this call was not completed: "
            "retry it once the server is back"
        )

    # -- the middleware --

    async def __call__(
        self, ctx: ServerRequestContext[Any, Any], call_next: CallNext
    ) -> HandlerResult:
        """Run a request's handler in a scope :meth:`stop` can cancel; answer the stop error."""
        ident = ctx.request_id
        if ident is None:  # a notification: nothing to answer
            return await call_next(ctx)
        if self.reason is None:
            scope = trio.CancelScope()
            self._calls.add(scope)
            try:
                with scope:
                    result = await call_next(ctx)
            finally:
                if self.stopping and self.reports_writes:
                    self._unwritten.add(ident)  # answered while stopping: wait until written
                self._calls.discard(scope)
                self._wake()
            if not scope.cancelled_caught:
                return result
        elif self.reports_writes:
            self._unwritten.add(ident)
        # Refused (arrived while stopping) or cancelled by stop(): the SDK writes this error.
        raise MCPError(SERVER_STOPPING, self.message())

    # -- what the transports report --

    def written(self, line: str) -> None:
        """Note one JSON-RPC message the stdio transport wrote (only read while stopping)."""
        if not self._unwritten:
            return
        try:
            ident = json.loads(line).get("id")
        except (ValueError, AttributeError):
            return
        if ident in self._unwritten:
            self._unwritten.discard(ident)
            self._wake()

    def asgi(self, app: ASGIApp) -> ASGIApp:
        """Wrap an HTTP app so :meth:`stop` can wait for the requests still open to be answered."""

        async def counted(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http" or scope.get("method") == "GET":
                # A GET is an SSE stream (or /metrics): open until the client leaves.
                await app(scope, receive, send)
                return
            self._open_http += 1
            try:
                await app(scope, receive, send)
            finally:
                self._open_http -= 1
                self._wake()

        return counted

    @contextmanager
    def reading(self) -> Iterator[trio.CancelScope]:
        """A scope for a transport's read, cancelled once the calls are drained (its EOF)."""
        scope = trio.CancelScope()
        if self.drained.is_set():
            scope.cancel()
        self._readers.add(scope)
        try:
            with scope:
                yield scope
        finally:
            self._readers.discard(scope)

    # -- stopping --

    async def stop(self, reason: str) -> None:
        """Refuse new calls, answer those in flight, wait (bounded) until the answers are out.

        Idempotent: a second caller (a signal after stdin closed) waits for the same drain.
        """
        if self.reason is None:
            self.reason = reason
            self._deadline = trio.current_time() + self.timeout_s
            _log.info("stopping", reason=reason, in_flight=len(self._calls))
            for scope in self._calls:
                scope.cancel()
        with trio.move_on_after(self.remaining()) as bound:
            while self._calls or self._unwritten or self._open_http:
                await self._changed.wait()

        if not self.drained.is_set():
            if bound.cancelled_caught:
                _log.warning(
                    "shutdown_answers_timed_out",
                    timeout_s=self.timeout_s,
                    in_flight=len(self._calls),
                    unwritten=len(self._unwritten),
                )
            self.drained.set()
            for reader in self._readers:
                reader.cancel()

    def _wake(self) -> None:
        self._changed.set()
        self._changed = trio.Event()


async def stop_on_signal(drain: Drain) -> None:
    """Drain on the first SIGINT or SIGTERM (what stopping the server means)."""
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for signum in signals:
            await drain.stop(signal.Signals(signum).name)
            return
