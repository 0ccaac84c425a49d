"""MCP progress while a call waits on a model: report its state changes until it is READY.

:func:`model_progress` wraps the part of a tool that may wait on a model (the
``hold_model`` block of an inference tool, ``ensure_loaded`` for ``load_model``).
It follows the orchestrator's change feed (``Orchestrator.watch()``, ADR 0006),
so every state the model passes through is reported once, in order, short ones
included, and nothing polls.

A wait is the time the model is not READY: from the start of the block if it
is not READY then, and again if it leaves READY inside the block (the backend
lost it and the held model re-leases it). A wait stays quiet for its first
``interval_s``: one that ends sooner (a READY model) reports nothing. After that
the model's current state is reported, then each change as it happens, until it
is READY; a block that ends while a wait is reported closes it with where the
model is (repeating the last report only if it was cut short). Requests to a
READY model report nothing however long they take.

A reported wait also sends a heartbeat every ``heartbeat_s`` while nothing
changes (``qwen/qwen3-4b: still LOADING after 12s``): a load of a large model
may stay in one state for minutes, and a client that resets its request
timeout on progress (``resetTimeoutOnProgress`` in the TypeScript SDK) keeps
waiting only while progress arrives.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import anyio
import trio
from mcp.server.mcpserver import Context

from orchestrator import (
    Dropped,
    ModelStatus,
    Orchestrator,
    State,
    Subscription,
    TransitionEvent,
)

__all__ = ["describe", "heartbeat", "model_progress"]

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


def _ready(status: ModelStatus | None) -> bool:
    return status is not None and status.state is State.READY


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
        self.reporting = False  # a wait has been reported and has not reached READY yet
        self.wait_started = time.monotonic()

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

    def _readiness(self, item: TransitionEvent | Dropped) -> bool | None:
        """Whether ``item`` says the model is READY now; None if it is about another model."""
        if isinstance(item, Dropped):  # the events are gone: the status says where it is
            return _ready(_snapshot(self._orch, self._model))
        return item.dst is State.READY if item.model == self._model else None

    def _line(self, item: TransitionEvent | Dropped) -> str:
        if isinstance(item, Dropped):
            return describe(self._model, _snapshot(self._orch, self._model))
        return _describe_event(self._orch, item)

    async def _until(self, feed: Subscription, *, ready: bool) -> bool:
        """Read the feed silently until the model is READY (or is not); False if it ended."""
        async for item in feed:
            if self._readiness(item) is ready:
                return True
        return False

    async def _report_wait(self, feed: Subscription) -> bool:
        """Report the model's state, then each change until it is READY; False if the feed ended."""
        while feed.get_nowait() is not None:
            pass  # what happened during the quiet period is in the snapshot
        self.reporting = True
        status = _snapshot(self._orch, self._model)
        await self.send(describe(self._model, status))
        if not _ready(status):
            async for item in feed:
                ready = self._readiness(item)
                if ready is not None:
                    await self.send(self._line(item))
                if ready:
                    break
            else:
                return False
        self.reporting = False
        return True

    async def follow(self, feed: Subscription, quiet_s: float) -> None:
        """Report each wait that outlasts ``quiet_s``, until the feed ends or we are cancelled."""
        waiting = not _ready(_snapshot(self._orch, self._model))
        while waiting or await self._until(feed, ready=False):
            waiting = False
            self.wait_started = time.monotonic()
            with trio.move_on_after(quiet_s) as quiet:
                if not await self._until(feed, ready=True):
                    return
            if quiet.cancelled_caught and not await self._report_wait(feed):
                return

    async def beat(self) -> None:
        """Say the wait goes on, with its elapsed time (if one is being reported)."""
        status = _snapshot(self._orch, self._model)
        if self.reporting and status is not None and not _ready(status):
            elapsed = time.monotonic() - self.wait_started
            await self.send(f"{self._model}: still {status.state.value} after {elapsed:.0f}s")

    async def close(self, feed: Subscription) -> None:
        """Close a wait still being reported with where the model is now."""
        if not self.reporting:
            return
        # The last transitions may have been published just before the block ended.
        while (item := feed.get_nowait()) is not None:
            if self._readiness(item) is not None:
                await self.send(self._line(item))
        await self.send(describe(self._model, _snapshot(self._orch, self._model)))


async def _beat_every(every_s: float, beat: Callable[[], Awaitable[None]]) -> None:
    while True:
        await trio.sleep(every_s)
        await beat()


@asynccontextmanager
async def _beside(*tasks: Callable[[], Awaitable[None]]) -> AsyncIterator[None]:
    """Run ``tasks`` while the block runs; stop them when it ends.

    Raised inside the nursery, the block's error would reach the caller wrapped in
    an ExceptionGroup; it is carried out and raised bare. Cancellation is not caught.
    """
    failure: Exception | None = None
    async with trio.open_nursery() as nursery:
        for task in tasks:
            nursery.start_soon(task)
        try:
            yield
        except Exception as exc:  # noqa: BLE001 - not swallowed: re-raised below
            failure = exc
        nursery.cancel_scope.cancel()
    if failure is not None:
        raise failure


@asynccontextmanager
async def heartbeat(every_s: float, beat: Callable[[], Awaitable[None]]) -> AsyncIterator[None]:
    """Call ``beat`` every ``every_s`` seconds while the block runs.

    An error of the block is raised as it is, not in an exception group.
    """
    async with _beside(partial(_beat_every, every_s, beat)):
        yield


@asynccontextmanager
async def model_progress(
    ctx: Context[Any, Any] | None,
    orch: Orchestrator,
    model: str,
    *,
    interval_s: float,
    heartbeat_s: float = 5.0,
) -> AsyncIterator[None]:
    """Report ``model``'s state changes to the caller while the block waits on it.

    Args:
        ctx: the tool's context; None reports nothing.
        orch: the orchestrator whose change feed to follow.
        model: the model the block waits on.
        interval_s: the quiet period of each wait: nothing is reported before it has passed.
        heartbeat_s: while a reported wait goes on unchanged, how often to say so.

    Progress is sent only if the client asked for it (a progress token); the
    SDK makes it a no-op otherwise. Cancelling the caller cancels both; an
    error of the block is raised as it is, not in an exception group.
    """
    if ctx is None:
        yield
        return
    reporter = _Reporter(ctx, orch, model)
    async with orch.watch(buffer=_BUFFER) as feed:
        async with _beside(
            partial(reporter.follow, feed, interval_s),
            partial(_beat_every, heartbeat_s, reporter.beat),
        ):
            yield
        await reporter.close(feed)
