"""Running the server: ``lmsorch serve`` and ``python -m mcp_frontend`` share this.

Over stdio (the default) stdout carries JSON-RPC only: every log line goes to
stderr. The process stops on stdin EOF (stdio), SIGINT or SIGTERM, and then
shuts down in order, all within ``shutdown_timeout_s`` of the stop: every call
in flight is answered with an error saying the server is stopping (see
:mod:`mcp_frontend.transports.drain`), then the server stops, the orchestrator
(unloading what it loaded, cancelling a load in flight), the metrics side
server, and the backend (which unloads a load it could not cancel once it
completes, within what is left of the bound).

``/metrics``, ``/status`` and ``/events`` are served next to ``/mcp`` over HTTP,
and on their own port with ``--metrics HOST:PORT`` (stdio or HTTP). That side
server starts before the orchestrator and stops after it, so scrapes during
shutdown are answered (they show the models unloading).
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from functools import partial

import trio

from mcp_frontend.backend_factory import make_backend
from mcp_frontend.server import build_server
from mcp_frontend.settings import FrontendSettings
from mcp_frontend.transports.drain import Drain, stop_on_signal
from mcp_frontend.transports.http import (
    MCP_PATH,
    check_exposure,
    parse_bind,
    serve_http,
    serve_observability,
)
from mcp_frontend.transports.observability import ObservabilityApp, StatusSource
from mcp_frontend.transports.stdio import serve_stdio
from orchestrator import Config, ConfigError, Metrics, open_orchestrator, unwrap_group
from orchestrator.inference import InferenceClient
from orchestrator.logs import configure_logging

__all__ = ["TOKEN_ENV", "ServeOptions", "main", "options_from", "serve"]

TOKEN_ENV = "LMSORCH_HTTP_TOKEN"


@dataclass(frozen=True)
class ServeOptions:
    """What to serve and how.

    Attributes:
        backend: ``lmstudio`` or ``llamacpp``; None uses the configured one.
        config_file: a TOML file; None uses ``$LMSORCH_CONFIG`` if set.
        http: ``(host, port)`` for streamable HTTP; None serves stdio.
        token: bearer token required over HTTP (``/mcp`` and the metrics server).
        log_level: overrides the configured level.
        metrics: ``(host, port)`` for a side server of ``/metrics``, ``/status``, ``/events``.
    """

    backend: str | None = None
    config_file: str | None = None
    http: tuple[str, int] | None = None
    token: str | None = None
    log_level: str | None = None
    metrics: tuple[str, int] | None = None


def options_from(args: argparse.Namespace) -> ServeOptions:
    """Return the options parsed arguments ask for.

    Raises:
        ConfigError: ``--http`` or ``--metrics`` is malformed, or exposes the server
            without a token.
    """
    http = parse_bind(args.http) if args.http else None
    metrics_arg = getattr(args, "metrics", None)
    metrics = parse_bind(metrics_arg, option="--metrics") if metrics_arg else None
    token = args.token or os.environ.get(TOKEN_ENV) or None
    for bind in (http, metrics):
        if bind is not None:
            check_exposure(bind[0], token)
    return ServeOptions(
        backend=args.backend,
        config_file=args.config,
        http=http,
        token=token,
        log_level=args.log_level,
        metrics=metrics,
    )


async def _stop(drain: Drain, scope: trio.CancelScope) -> None:
    """Drain on a signal, then end the transport (at once over HTTP, by its EOF over stdio)."""
    await stop_on_signal(drain)
    if drain.reports_writes:
        # This stdio session ends by itself once drained (its reader reports EOF); this only
        # bounds it. HTTP, and the SDK's own stdio over a terminal, end here at once.
        await trio.sleep(drain.remaining())
    scope.cancel()


async def serve(options: ServeOptions) -> None:
    """Serve until stdin closes (stdio), or SIGINT/SIGTERM arrives.

    Raises:
        ConfigError: the configuration or settings are invalid.
    """
    config = Config.load(options.config_file, log_level=options.log_level)
    settings = FrontendSettings.from_env()
    # Ours and the libraries' (the SDK, transitions, hypercorn): redacted, on stderr.
    configure_logging(config.log_level, secrets=(options.token, config.lmstudio.api_token))
    backend = make_backend(config, options.backend)
    metrics = Metrics()
    source = StatusSource(metrics)
    observability = ObservabilityApp(source)
    drain = Drain(config.shutdown_timeout_s)
    try:
        async with trio.open_nursery() as outer:
            if options.metrics is not None:
                host, port = options.metrics
                side = partial(
                    serve_observability, observability, host=host, port=port, token=options.token
                )
                for url in await outer.start(side):
                    print(f"lmsorch: metrics at {url}/metrics", file=sys.stderr)
            async with (
                # The MCP handshake never waits for the backend (a silent one would hold it).
                open_orchestrator(
                    backend, config, metrics=metrics, adopt_in_background=True
                ) as orch,
                InferenceClient() as client,
            ):
                source.orch = orch
                server = build_server(orch, settings=settings, inference_client=client)
                server.middleware.append(drain)
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(_stop, drain, nursery.cancel_scope)
                    if options.http is None:
                        await serve_stdio(server, drain)
                    else:
                        host, port = options.http
                        run = partial(
                            serve_http,
                            server,
                            host=host,
                            port=port,
                            token=options.token,
                            observability=observability,
                            drain=drain,
                        )
                        for url in await nursery.start(run):
                            print(f"lmsorch: MCP over HTTP at {url}{MCP_PATH}", file=sys.stderr)
                        await drain.drained.wait()
                    nursery.cancel_scope.cancel()
            outer.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        # One failure (e.g. a port already in use, which hypercorn wraps in a group of
        # its own) is reported as itself, not as nested groups.
        lone = unwrap_group(group, sole=True)
        if lone is group:
            raise
        raise lone from lone.__cause__
    finally:
        # What is left of the bound (a load the backend could not cancel may still be
        # completing, to unload), but a moment at least to close cleanly.
        with trio.CancelScope(shield=True), trio.move_on_after(drain.remaining(floor=1.0)):
            await backend.aclose()


def main(options: ServeOptions) -> int:
    """Run :func:`serve` under trio; return the process exit code."""
    try:
        trio.run(serve, options)
    except ConfigError as exc:
        print(f"lmsorch serve: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # e.g. the --http or --metrics port is taken
        print(f"lmsorch serve: error: {exc}", file=sys.stderr)
        return 1
    return 0
