"""Per-connection notifications: resource updates on model state changes, and log messages.

**Resource subscriptions.** A client subscribes (``resources/subscribe``) to
``lmsorch://status/<model>``, ``lmsorch://status``, ``lmsorch://models`` or
``lmsorch://statechart``; each time a model changes state (the orchestrator's
change feed) the affected ones it subscribed to get
``notifications/resources/updated``. Other URIs are accepted and never
updated.

**Logging.** A client that sets a level (``logging/setLevel``) gets our log
events at or above it (and at or above the server's own ``--log-level``) as
``notifications/message``, redacted as in the server's log. At most 256 wait
to be sent; beyond that events are dropped, never waited for.

Both are per connection: the server's lifespan (one per connection) starts a
task that watches the feed and sends what the connection asked for. Both belong
to the handshake era; the stateless 2026-07-28 protocol does neither (it has
its own opt-ins), so the discovery answer does not claim them.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio
import trio
from mcp.server.context import ServerRequestContext
from mcp.server.mcpserver import MCPServer
from mcp.server.session import ServerSession
from mcp.types import (
    DiscoverResult,
    EmptyResult,
    LoggingLevel,
    LoggingMessageNotification,
    LoggingMessageNotificationParams,
    ResourceUpdatedNotification,
    ResourceUpdatedNotificationParams,
    SetLevelRequestParams,
    SubscribeRequestParams,
    UnsubscribeRequestParams,
)

from orchestrator import Dropped, Orchestrator
from orchestrator.logs import LogTap, add_log_tap

__all__ = ["LOG_BUFFER", "Connection", "register", "watch_connection"]

LOG_BUFFER = 256
"""Log messages that may wait to be sent to one client; more are dropped."""

# RFC 5424 order, as MCP uses it; structlog's names map onto it.
_LEVELS: tuple[LoggingLevel, ...] = (
    "debug", "info", "notice", "warning", "error", "critical", "alert", "emergency",
)  # fmt: skip
_FROM_STRUCTLOG: dict[str, LoggingLevel] = {
    "debug": "debug", "info": "info", "warning": "warning", "warn": "warning",
    "error": "error", "exception": "error", "critical": "critical",
}  # fmt: skip
_ALWAYS = ("lmsorch://status", "lmsorch://models", "lmsorch://statechart")


@dataclass
class Connection:
    """What one connection asked for: subscribed URIs and a log level."""

    session: ServerSession | None = None
    uris: set[str] = field(default_factory=set)
    level: LoggingLevel | None = None


def _connection(ctx: ServerRequestContext[Any, Any]) -> Connection:
    state = ctx.lifespan_context
    conn = state.get("notifications") if isinstance(state, dict) else None
    if not isinstance(conn, Connection):
        raise RuntimeError("no per-connection state: the server was built without its lifespan")
    conn.session = ctx.session
    return conn


def register(mcp: MCPServer[Any]) -> None:
    """Serve ``resources/subscribe``, ``resources/unsubscribe`` and ``logging/setLevel``.

    The stateless (2026-07-28) discovery answer is left claiming neither logging
    nor subscriptions: both are delivered only on handshake-era connections.
    """

    async def subscribe(
        ctx: ServerRequestContext[Any, Any], params: SubscribeRequestParams
    ) -> EmptyResult:
        _connection(ctx).uris.add(str(params.uri))
        return EmptyResult()

    async def unsubscribe(
        ctx: ServerRequestContext[Any, Any], params: UnsubscribeRequestParams
    ) -> EmptyResult:
        _connection(ctx).uris.discard(str(params.uri))
        return EmptyResult()

    async def set_level(
        ctx: ServerRequestContext[Any, Any], params: SetLevelRequestParams
    ) -> EmptyResult:
        _connection(ctx).level = params.level
        return EmptyResult()

    # Through the low-level server: MCPServer has no decorator for these, and the
    # constructor argument for logging warns that the capability is deprecated in
    # the 2026-07-28 era (which this server does not claim it for).
    lowlevel = mcp._lowlevel_server
    lowlevel.add_request_handler("resources/subscribe", SubscribeRequestParams, subscribe)
    lowlevel.add_request_handler("resources/unsubscribe", UnsubscribeRequestParams, unsubscribe)
    lowlevel.add_request_handler("logging/setLevel", SetLevelRequestParams, set_level)
    discover = lowlevel.get_request_handler("server/discover")
    assert discover is not None

    async def discover_honestly(ctx: ServerRequestContext[Any, Any], params: Any) -> Any:
        answer = await discover.handler(ctx, params)
        if isinstance(answer, DiscoverResult):
            answer.capabilities.logging = None
        return answer

    lowlevel.add_request_handler("server/discover", discover.params_type, discover_honestly)


async def _send(conn: Connection, notification: Any) -> bool:
    """Send to the connection's client; False once it is gone."""
    if conn.session is None:
        return True
    try:
        await conn.session.send_notification(notification)
    except (anyio.ClosedResourceError, anyio.BrokenResourceError):
        return False
    return True


async def _updates(orch: Orchestrator, conn: Connection) -> None:
    async with orch.watch() as feed:
        async for item in feed:
            models = {m.model for m in orch.status()} if isinstance(item, Dropped) else {item.model}
            changed = [*_ALWAYS, *(f"lmsorch://status/{m}" for m in sorted(models))]
            for uri in changed:
                if uri in conn.uris:
                    note = ResourceUpdatedNotification(
                        params=ResourceUpdatedNotificationParams(uri=uri)
                    )
                    if not await _send(conn, note):
                        return


async def _logs(
    conn: Connection, receive: trio.MemoryReceiveChannel[LoggingMessageNotification]
) -> None:
    async for note in receive:
        if not await _send(conn, note):
            return


def _tap(
    conn: Connection,
    token: trio.lowlevel.TrioToken,
    send: trio.MemorySendChannel[LoggingMessageNotification],
) -> LogTap:
    def tap(event: Mapping[str, Any]) -> None:
        level = _FROM_STRUCTLOG.get(str(event.get("level", "info")), "info")
        wanted = conn.level
        if wanted is None or _LEVELS.index(level) < _LEVELS.index(wanted):
            return
        data = {k: v for k, v in event.items() if k not in ("level", "timestamp")}
        note = LoggingMessageNotification(
            params=LoggingMessageNotificationParams(level=level, logger="lmsorch", data=data)
        )

        def put() -> None:
            # A slow client loses log lines; it never sets the server's pace.
            with contextlib.suppress(
                trio.WouldBlock, trio.ClosedResourceError, trio.BrokenResourceError
            ):
                send.send_nowait(note)

        # Events may be logged from worker threads too: hand over through trio.
        # A line logged as the run ends is dropped: logging must never fail.
        with contextlib.suppress(trio.RunFinishedError):
            token.run_sync_soon(put)

    return tap


@asynccontextmanager
async def watch_connection(orch: Orchestrator) -> AsyncIterator[Connection]:
    """Run one connection's notification tasks while the block runs."""
    conn = Connection()
    send, receive = trio.open_memory_channel[LoggingMessageNotification](LOG_BUFFER)
    remove = add_log_tap(_tap(conn, trio.lowlevel.current_trio_token(), send))
    failure: Exception | None = None
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_updates, orch, conn)
            nursery.start_soon(_logs, conn, receive)
            try:
                yield conn
            except Exception as exc:  # noqa: BLE001 - not swallowed: re-raised below
                failure = exc
            nursery.cancel_scope.cancel()
    finally:
        remove()
        send.close()
    if failure is not None:
        raise failure
