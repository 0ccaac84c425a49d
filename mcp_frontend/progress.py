"""MCP progress for long waits: report a model's state transitions while a call waits on it.

The facade has no change feed, so a watcher task polls ``orch.status()`` (a
cheap in-memory snapshot) every ``interval_s`` and reports each change of the
model's state as one progress notification. A call that finishes before the
first poll reports nothing, so fast calls on READY models stay quiet.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import anyio
import trio
from mcp.server.mcpserver import Context

from orchestrator import ModelStatus, Orchestrator

__all__ = ["describe", "with_progress"]

T = TypeVar("T")


def describe(model: str, status: ModelStatus | None) -> str:
    """Return one progress line for ``model``'s status."""
    if status is None:
        return f"{model}: reading the model catalogue"
    line = f"{model}: {status.state.value}"
    if status.consecutive_failures:
        line += f" ({status.consecutive_failures} failed attempts"
        line += f", last: {status.last_error})" if status.last_error else ")"
    if status.retry_after_s is not None:
        line += f", retry after {status.retry_after_s:.1f}s"
    return line


def _snapshot(orch: Orchestrator, model: str) -> ModelStatus | None:
    return next((s for s in orch.status() if s.model == model), None)


async def with_progress(
    ctx: Context[Any, Any] | None,
    orch: Orchestrator,
    model: str,
    fn: Callable[[], Awaitable[T]],
    *,
    interval_s: float,
) -> T:
    """Await ``fn()`` while reporting ``model``'s state changes to the caller.

    Progress is sent only if the client asked for it (a progress token); the
    SDK makes it a no-op otherwise. Cancelling the caller cancels both.
    """
    if ctx is None:
        return await fn()
    reported = 0

    async def watch() -> None:
        nonlocal reported
        last: tuple[str, int] | None = None
        while True:
            await trio.sleep(interval_s)
            status = _snapshot(orch, model)
            key = (status.state.value, status.consecutive_failures) if status else ("", 0)
            if key != last:
                last = key
                reported += 1
                try:
                    await ctx.report_progress(reported, None, describe(model, status))
                except (anyio.ClosedResourceError, anyio.BrokenResourceError):
                    return  # the client went away; progress is best-effort

    failure: Exception | None = None
    async with trio.open_nursery() as nursery:
        nursery.start_soon(watch)
        # Raised inside the nursery, the error would reach the caller wrapped in an
        # ExceptionGroup; carry it out and raise it bare. Cancellation is not caught.
        try:
            result = await fn()
        except Exception as exc:  # noqa: BLE001 - not swallowed: re-raised below
            failure = exc
        nursery.cancel_scope.cancel()
    if failure is not None:
        raise failure
    if reported:
        # Close the sequence with where the wait ended (usually READY).
        await ctx.report_progress(reported + 1, None, describe(model, _snapshot(orch, model)))
    return result
