"""``/metrics``, ``/status`` and ``/events``: the observability endpoints, as a small ASGI app.

Mounted next to ``/mcp`` in the HTTP transport, or served alone on
``lmsorch serve --metrics HOST:PORT`` in stdio mode. Behind the same bearer
token as ``/mcp`` when one is configured (Prometheus sends it with
``authorization: {credentials_file: ...}``).

- ``GET /metrics``: the Prometheus text exposition of the orchestrator's registry.
- ``GET /status``: ``{"models": [ModelStatus...], "running": bool, "scheduler": ...}`` as
  JSON; ``scheduler`` is the queue per model waiting for a slot and the swaps by reason
  (:class:`~orchestrator.scheduler.SchedulerStatus`), null while not running.
- ``GET /events``: NDJSON, one object a line: first ``{"type": "snapshot", "models": [...]}``,
  then ``{"type": "transition", ...}`` per state change and ``{"type": "dropped", "count": n}``
  when this client read too slowly; the stream ends when the orchestrator stops.

A request that arrives before the orchestrator starts or after it stopped gets
metrics as they are and an empty, ``"running": false`` status: scrapes during
shutdown are answered, never failed.
"""

from __future__ import annotations

from typing import Any

import msgspec
import trio
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.types import ASGIApp, Receive, Scope, Send

from orchestrator import Metrics, Orchestrator

__all__ = ["OBSERVABILITY_PATHS", "ObservabilityApp", "StatusSource", "route_observability"]

OBSERVABILITY_PATHS = frozenset({"/metrics", "/status", "/events"})
_NDJSON = b"application/x-ndjson"
_JSON = b"application/json"
_encoder = msgspec.json.Encoder()


class StatusSource:
    """What the endpoints read: the metrics, and the orchestrator while it runs.

    The metrics outlive the orchestrator (they are created first), so the side
    server can start before it and keep answering while it shuts down.
    """

    def __init__(self, metrics: Metrics, orch: Orchestrator | None = None) -> None:
        self.metrics = metrics
        self.orch = orch


class ObservabilityApp:
    """ASGI app serving ``/metrics``, ``/status`` and ``/events`` (GET or HEAD only)."""

    def __init__(self, source: StatusSource, *, events_buffer: int = 1024) -> None:
        self._source = source
        self._buffer = events_buffer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one request; lifespan events are acknowledged."""
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        path, method = scope["path"], scope["method"]
        if path not in OBSERVABILITY_PATHS:
            await _respond(send, 404, _JSON, b'{"error": "not found: try /metrics, /status"}')
        elif method not in ("GET", "HEAD"):
            await _respond(send, 405, _JSON, b'{"error": "method not allowed: use GET"}')
        elif path == "/metrics":
            body = self._source.metrics.exposition()
            await _respond(send, 200, CONTENT_TYPE_LATEST.encode(), body, head=method == "HEAD")
        elif path == "/status":
            orch, running = self._source.orch, self._running()
            scheduler = orch.scheduler_status() if orch is not None and running else None
            backend = orch.backend_health() if orch is not None else None
            status = {
                "models": self._models(),
                "running": running,
                "scheduler": scheduler,
                "backend": backend,
            }
            body = _encoder.encode(status)
            await _respond(send, 200, _JSON, body, head=method == "HEAD")
        elif method == "HEAD":
            await _respond(send, 200, _NDJSON, b"", head=True)
        else:
            await self._events(receive, send)

    def _running(self) -> bool:
        return self._source.orch is not None and not self._source.orch.stopped

    def _models(self) -> list[Any]:
        orch = self._source.orch
        return list(orch.status()) if orch is not None else []

    async def _events(self, receive: Receive, send: Send) -> None:
        orch = self._source.orch
        headers = [(b"content-type", _NDJSON), (b"cache-control", b"no-store")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        snapshot = {"type": "snapshot", "models": self._models()}
        if orch is None or orch.stopped:
            await send({"type": "http.response.body", "body": _encoder.encode(snapshot) + b"\n"})
            return
        disconnected = trio.Event()
        async with orch.watch(buffer=self._buffer) as sub, trio.open_nursery() as nursery:
            # Subscribed before the snapshot is taken: no change falls between the two.
            snapshot["models"] = self._models()
            nursery.start_soon(_cancel_on_disconnect, receive, nursery.cancel_scope, disconnected)
            await _chunk(send, _encoder.encode(snapshot) + b"\n")
            async for item in sub:
                await _chunk(send, _encoder.encode(item) + b"\n")
            nursery.cancel_scope.cancel()  # the feed ended: stop waiting for a disconnect
        if not disconnected.is_set():
            await send({"type": "http.response.body", "body": b""})


async def _chunk(send: Send, data: bytes) -> None:
    await send({"type": "http.response.body", "body": data, "more_body": True})


async def _cancel_on_disconnect(
    receive: Receive, scope: trio.CancelScope, disconnected: trio.Event
) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            disconnected.set()
            scope.cancel()
            return


async def _respond(
    send: Send, status: int, ctype: bytes, body: bytes, *, head: bool = False
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", ctype), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": b"" if head else body})


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


def route_observability(app: ASGIApp, observability: ObservabilityApp) -> ASGIApp:
    """Return an app sending the observability paths to ``observability``, the rest to ``app``."""

    async def router(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] in OBSERVABILITY_PATHS:
            await observability(scope, receive, send)
        else:
            await app(scope, receive, send)

    return router
