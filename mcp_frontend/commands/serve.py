"""``lmsorch serve``: run the MCP server over stdio (default) or streamable HTTP.

Only argparse is imported here; the server and its SDK load when the command runs.
"""

from __future__ import annotations

import argparse
import sys

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``serve`` options."""
    parser.add_argument(
        "--backend", choices=("lmstudio", "llamacpp"), help="model server (default: config)"
    )
    parser.add_argument(
        "--http",
        metavar="HOST:PORT",
        help="serve streamable HTTP at http://HOST:PORT/mcp instead of stdio "
        "(HOST defaults to 127.0.0.1)",
    )
    parser.add_argument(
        "--metrics",
        metavar="HOST:PORT",
        help="also serve /metrics, /status and /events at http://HOST:PORT (HOST defaults to "
        "127.0.0.1; another host needs the token, like --http)",
    )
    parser.add_argument("--config", metavar="FILE", help="TOML configuration file")
    parser.add_argument(
        "--token",
        help="bearer token HTTP clients must send (prefer the LMSORCH_HTTP_TOKEN environment "
        "variable: arguments are visible to other local users)",
    )
    parser.add_argument(
        "--log-level", choices=("debug", "info", "warning", "error"), help="stderr log level"
    )


def run(args: argparse.Namespace) -> int:
    """Serve until stdin closes or a signal arrives; returns the exit code."""
    from mcp_frontend.transports.serve import main, options_from
    from orchestrator import ConfigError

    try:
        options = options_from(args)
    except ConfigError as exc:
        print(f"lmsorch serve: error: {exc}", file=sys.stderr)
        return 2
    return main(options)
