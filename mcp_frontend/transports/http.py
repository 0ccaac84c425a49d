"""Streamable HTTP: the ASGI app behind an optional bearer token, on hypercorn's trio worker.

The SDK's own HTTP runner uses uvicorn, which is asyncio-only; the same ASGI
app served by ``hypercorn.trio`` runs on trio. Bound to loopback unless told
otherwise; then the SDK also checks ``Host``/``Origin`` headers against
DNS rebinding. With a token, every HTTP request must carry
``Authorization: Bearer <token>`` or gets 401.

The observability endpoints (``/metrics``, ``/status``, ``/events``, see
:mod:`mcp_frontend.transports.observability`) are mounted next to ``/mcp`` and sit behind the
same token: model names and activity are not for anyone on the network.
:func:`serve_observability` serves them alone (``lmsorch serve --metrics``).
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, cast

import trio
from mcp.server.mcpserver import MCPServer
from starlette.types import ASGIApp, Receive, Scope, Send

from mcp_frontend.transports.drain import Drain
from mcp_frontend.transports.event_store import RETRY_INTERVAL_MS, BoundedEventStore
from mcp_frontend.transports.observability import ObservabilityApp, route_observability
from orchestrator import ConfigError

if TYPE_CHECKING:
    from hypercorn.typing import ASGIFramework

__all__ = [
    "DEFAULT_HOST",
    "MCP_PATH",
    "BearerTokenGuard",
    "LoopbackHostGuard",
    "build_http_app",
    "check_exposure",
    "is_loopback",
    "parse_bind",
    "serve_http",
    "serve_observability",
]

DEFAULT_HOST = "127.0.0.1"
MCP_PATH = "/mcp"


class BearerTokenGuard:
    """ASGI middleware: HTTP requests without ``Authorization: Bearer <token>`` get 401."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        if not token:
            raise ConfigError("the HTTP token must not be empty")
        self._app = app
        self._expected = f"Bearer {token}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Check the token on HTTP requests; refuse websockets; pass lifespan events through."""
        if scope["type"] == "websocket":
            # Nothing here speaks websocket; close before any app (or its auth) sees it.
            await send({"type": "websocket.close", "code": 1008})
            return
        if scope["type"] == "http":
            given = dict(scope["headers"]).get(b"authorization", b"")
            # Constant-time comparison: the token must not leak through timing.
            if not hmac.compare_digest(given, self._expected):
                await _unauthorized(send)
                return
        await self._app(scope, receive, send)


class LoopbackHostGuard:
    """ASGI middleware: HTTP requests must name this machine in ``Host`` (or get 421).

    Used on loopback binds in front of the observability endpoints (the SDK
    checks ``/mcp`` the same way): without it, a web page could rebind its own
    host name to 127.0.0.1 and read ``/status`` and ``/metrics`` from the
    user's browser.
    """

    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer 421 to an HTTP request whose ``Host`` is not a loopback name."""
        if scope["type"] == "http":
            host = dict(scope["headers"]).get(b"host", b"").decode("latin-1")
            name = host[1 : host.find("]")] if host.startswith("[") else host.partition(":")[0]
            if not is_loopback(name):
                body = b"Invalid Host header"
                await send(
                    {
                        "type": "http.response.start",
                        "status": 421,
                        "headers": [(b"content-length", str(len(body)).encode())],
                    }
                )
                await send({"type": "http.response.body", "body": body})
                return
        await self._app(scope, receive, send)


async def _unauthorized(send: Send) -> None:
    body = b'{"error": "unauthorized: send Authorization: Bearer <token>"}'
    await send(
        {
            "type": "http.response.start",
            "status": 401,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"www-authenticate", b'Bearer realm="lmsorch"'),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine only (``localhost`` or a loopback address)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_exposure(host: str, token: str | None) -> None:
    """Refuse to serve a non-loopback address without a token.

    Raises:
        ConfigError: ``host`` is reachable from other machines and ``token`` is None
            (anyone on the network could drive the models).
    """
    if token is None and not is_loopback(host):
        raise ConfigError(
            f"refusing to serve on {host} without a token: set LMSORCH_HTTP_TOKEN "
            "(or --token), or bind to 127.0.0.1"
        )


def parse_bind(text: str, *, option: str = "--http") -> tuple[str, int]:
    """Parse ``HOST:PORT``, ``[IPv6]:PORT``, ``:PORT`` or ``PORT`` (host defaults to loopback).

    Raises:
        ConfigError: not a host and a port in 0-65535.
    """
    host, sep, port = text.rpartition(":")
    if not sep:
        host, port = "", text
    host = host.strip("[]") or DEFAULT_HOST
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"{option} wants HOST:PORT (e.g. 127.0.0.1:8765), got {text!r}")
    return host, int(port)


def build_http_app(
    server: MCPServer[Any],
    *,
    host: str,
    token: str | None,
    observability: ObservabilityApp | None = None,
) -> ASGIApp:
    """Return the streamable HTTP ASGI app (at ``/mcp``), behind the token when one is given.

    With ``observability``, ``/metrics``, ``/status`` and ``/events`` are served too.
    """
    app: ASGIApp = server.streamable_http_app(
        streamable_http_path=MCP_PATH,
        host=host,
        # Event ids and a retry hint, so a dropped SSE connection can resume.
        event_store=BoundedEventStore(),
        retry_interval=RETRY_INTERVAL_MS,
    )
    if observability is not None:
        app = route_observability(app, observability)
        if is_loopback(host):
            app = LoopbackHostGuard(app)
    return BearerTokenGuard(app, token) if token is not None else app


async def _serve_asgi(
    app: ASGIApp,
    *,
    host: str,
    port: int,
    shutdown_trigger: Callable[[], Awaitable[None]] | None,
    task_status: trio.TaskStatus[list[str]],
) -> None:
    # Imported here: hypercorn (and h2, hpack) is a tenth of a second that a stdio
    # server, the common case, never needs before its first answer.
    from hypercorn.config import Config as HypercornConfig
    from hypercorn.trio import serve

    config = HypercornConfig()
    config.bind = [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"]
    config.accesslog = None  # hypercorn's "-" would mean stdout
    # A Logger is used as is: it propagates to the process's stderr handler, once.
    config.errorlog = logging.getLogger("hypercorn.error")
    # Starlette's and hypercorn's type aliases describe the same ASGI callable.
    await serve(
        cast("ASGIFramework", app),
        config,
        shutdown_trigger=shutdown_trigger,
        task_status=task_status,
    )


async def serve_http(
    server: MCPServer[Any],
    *,
    host: str = DEFAULT_HOST,
    port: int,
    token: str | None,
    observability: ObservabilityApp | None = None,
    drain: Drain | None = None,
    shutdown_trigger: Callable[[], Awaitable[None]] | None = None,
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``server`` over streamable HTTP until ``shutdown_trigger`` returns.

    ``task_status.started`` receives the bound base URLs (``http://host:port``),
    which tells the real port when ``port`` is 0. With ``observability``, the
    observability endpoints are served too (behind the same token). With
    ``drain``, a stop waits for the requests still open to get their answers.

    Raises:
        ConfigError: a non-loopback ``host`` without a token (see :func:`check_exposure`).
    """
    check_exposure(host, token)
    app = build_http_app(server, host=host, token=token, observability=observability)
    if drain is not None:
        app = drain.asgi(app)
    await _serve_asgi(
        app, host=host, port=port, shutdown_trigger=shutdown_trigger, task_status=task_status
    )


async def serve_observability(
    observability: ObservabilityApp,
    *,
    host: str = DEFAULT_HOST,
    port: int,
    token: str | None,
    shutdown_trigger: Callable[[], Awaitable[None]] | None = None,
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve only ``/metrics``, ``/status`` and ``/events`` (the stdio mode's side server).

    Loopback by default; a non-loopback ``host`` needs a token, which every
    request must then carry, as for :func:`serve_http`.

    Raises:
        ConfigError: a non-loopback ``host`` without a token.
    """
    check_exposure(host, token)
    app: ASGIApp = LoopbackHostGuard(observability) if is_loopback(host) else observability
    app = BearerTokenGuard(app, token) if token is not None else app
    await _serve_asgi(
        app, host=host, port=port, shutdown_trigger=shutdown_trigger, task_status=task_status
    )
