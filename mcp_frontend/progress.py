"""MCP progress for long waits: report a model's state transitions while a call waits on it.

The watcher follows the orchestrator's change feed (``Orchestrator.watch()``,
ADR 0006), so every state the model passes through is reported once, in order,
short ones included, and nothing polls. A call stays quiet for its first
``interval_s``: one that finishes sooner (a READY model) reports nothing. After
that the model's current state is reported, then each change as it happens, and
the wait closes with where it ended (repeated only if the last report was cut
short when the wait ended).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import anyio
import trio
from mcp.server.mcpserver import Context

from orchestrator import ModelStatus, Orchestrator, Subscription, TransitionEvent

__all__ = ["describe", "with_progress"]

T = TypeVar("T")
_BUFFER = 64  # transitions of one wait; a watcher this far behind re-reads the status


def describe(model: str, status: ModelStatus | None) -> str:
    """Return one progress line for ``model``'s status."""
    if status is None:
        return f"{model}: reading the model catalogue"
    return _line(
        model,
        status.state.value,
        status.consecutive_failures,
        status.last_error,
        status.retry_after_s,
    )


def _line(
    model: str, state: str, failures: int, last_error: str | None, retry_after_s: float | None
) -> str:
    line = f"{model}: {state}"
    if failures:
        line += f" ({failures} failed attempts"
        line += f", last: {last_error})" if last_error else ")"
    if retry_after_s is not None:
        line += f", retry after {retry_after_s:.1f}s"
    return line


def _snapshot(orch: Orchestrator, model: str) -> ModelStatus | None:
    return next((s for s in orch.status() if s.model == model), None)


def _describe_event(orch: Orchestrator, event: TransitionEvent) -> str:
    now = _snapshot(orch, event.model)  # the event has no deadline; the status does
    retry_after = now.retry_after_s if now is not None and now.state is event.dst else None
    return _line(
        event.model, event.dst.value, event.consecutive_failures, event.last_error, retry_after
    )


class _Reporter:
    """Sends progress lines, skipping repeats; stops quietly once the client is gone."""

    def __init__(self, ctx: Context[Any, Any], orch: Orchestrator, model: str) -> None:
        self._ctx = ctx
        self._orch = orch
        self._model = model
        self.sent = 0
        self._last: str | None = None
        self._gone = False

    async def send(self, line: str) -> None:
        if self._gone or line == self._last:
            return
        self.sent += 1
        try:
            await self._ctx.report_progress(self.sent, None, line)
        except (anyio.ClosedResourceError, anyio.BrokenResourceError):
            self._gone = True  # the client went away; progress is best-effort
        # Only once sent: a report cancelled midway is repeated by the closing one.
        self._last = line

    async def catch_up(self, feed: Subscription) -> None:
        """Report what the feed holds for this model (the status itself after a drop)."""
        while (item := feed.get_nowait()) is not None:
            if isinstance(item, TransitionEvent):
                if item.model == self._model:
                    await self.send(_describe_event(self._orch, item))
            else:
                await self.send(describe(self._model, _snapshot(self._orch, self._model)))

    async def follow(self, feed: Subscription, quiet_s: float) -> None:
        await trio.sleep(quiet_s)
        while feed.get_nowait() is not None:
            pass  # what happened during the quiet period is in the snapshot
        await self.send(describe(self._model, _snapshot(self._orch, self._model)))
        async for item in feed:
            if isinstance(item, TransitionEvent):
                if item.model == self._model:
                    await self.send(_describe_event(self._orch, item))
            else:
                await self.send(describe(self._model, _snapshot(self._orch, self._model)))


async def with_progress(
    ctx: Context[Any, Any] | None,
    orch: Orchestrator,
    model: str,
    fn: Callable[[], Awaitable[T]],
    *,
    interval_s: float,
) -> T:
    """Await ``fn()`` while reporting ``model``'s state changes to the caller.

    Args:
        ctx: the tool's context; None reports nothing.
        orch: the orchestrator whose change feed to follow.
        model: the model the call waits on.
        fn: the wait itself.
        interval_s: the quiet period: nothing is reported before it has passed.

    Progress is sent only if the client asked for it (a progress token); the
    SDK makes it a no-op otherwise. Cancelling the caller cancels both.
    """
    if ctx is None:
        return await fn()
    reporter = _Reporter(ctx, orch, model)
    failure: Exception | None = None
    async with orch.watch(buffer=_BUFFER) as feed:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(reporter.follow, feed, interval_s)
            # Raised inside the nursery, the error would reach the caller wrapped in an
            # ExceptionGroup; carry it out and raise it bare. Cancellation is not caught.
            try:
                result = await fn()
            except Exception as exc:  # noqa: BLE001 - not swallowed: re-raised below
                failure = exc
            nursery.cancel_scope.cancel()
        if failure is not None:
            raise failure
        if reporter.sent:
            # Close the sequence with where the wait ended (usually READY): the last
            # transitions may have been published just before fn() returned.
            await reporter.catch_up(feed)
            await reporter.send(describe(model, _snapshot(orch, model)))
    return result
