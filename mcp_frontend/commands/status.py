"""``lmsorch status``: ask a running server what its models are doing.

Talks to the observability endpoints of ``lmsorch serve --http HOST:PORT`` or
``lmsorch serve --metrics HOST:PORT``: ``/status`` for the one-shot table,
``/events`` (NDJSON) for ``--watch``. The token, when the server wants one, comes
from ``LMSORCH_HTTP_TOKEN`` (never from an argument: argv is visible to other users).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, TextIO

__all__ = ["DEFAULT_URL", "URL_ENV", "add_arguments", "format_table", "run", "show", "watch"]

DEFAULT_URL = "http://127.0.0.1:8765"
URL_ENV = "LMSORCH_STATUS_URL"
TOKEN_ENV = "LMSORCH_HTTP_TOKEN"
_COLUMNS = ("MODEL", "STATE", "IN FLIGHT", "EXPIRES IN", "FAILURES", "RETRY AFTER", "LAST ERROR")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the command's options."""
    parser.add_argument(
        "--url",
        default=os.environ.get(URL_ENV, DEFAULT_URL),
        help=f"the server's base URL (default: ${URL_ENV} or {DEFAULT_URL}); a trailing /mcp "
        f"is ignored. The token comes from ${TOKEN_ENV}",
    )
    parser.add_argument(
        "--watch", action="store_true", help="print the table, then every transition live"
    )
    parser.add_argument(
        "--count", type=int, metavar="N", help="with --watch: stop after N transitions"
    )
    parser.add_argument(
        "--timeout", type=float, default=10.0, metavar="S", help="connect/read timeout (seconds)"
    )


def _base(url: str) -> str:
    url = url.rstrip("/")
    return url.removesuffix("/mcp")


def _seconds(value: object) -> str:
    return f"{value:.1f}s" if isinstance(value, int | float) else "-"


def format_table(models: Sequence[Mapping[str, Any]]) -> str:
    """Return ``models`` (``/status`` entries) as an aligned text table."""
    if not models:
        return "no models managed yet (they appear on first use)\n"
    rows = [
        (
            str(s["model"]),
            str(s["state"]),
            str(s.get("in_flight", 0)),
            _seconds(s.get("expires_in_s")),
            str(s.get("consecutive_failures", 0)),
            _seconds(s.get("retry_after_s")),
            " ".join(str(s.get("last_error") or "-").split())[:80],
        )
        for s in models
    ]
    widths = [max(len(r[i]) for r in [_COLUMNS, *rows]) for i in range(len(_COLUMNS))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)) for r in rows]
    header = "  ".join(c.ljust(w) for c, w in zip(_COLUMNS, widths, strict=True))
    return "\n".join(line.rstrip() for line in [header, *lines]) + "\n"


def format_scheduler(scheduler: Mapping[str, Any] | None) -> str:
    """Return the slot queues and swaps of a ``/status`` answer, or nothing if there are none."""
    if not scheduler:
        return ""
    lines = [
        f"waiting for a slot: {q['model']}: {q['queued']} queued, oldest "
        f"{_seconds(q['oldest_wait_s'])} (swap forced at {_seconds(q['wait_bound_s'])})"
        if q["queued"]
        else f"draining to be swapped out: {q['model']} ({q['closed']})"
        for q in scheduler.get("queues", [])
    ]
    swaps = scheduler.get("swaps") or {}
    if swaps:
        reasons = ", ".join(f"{reason} {n}" for reason, n in sorted(swaps.items()))
        lines.append(f"swaps ({scheduler.get('policy')}): {sum(swaps.values())}: {reasons}")
    return "".join(f"{line}\n" for line in lines)


def format_event(event: Mapping[str, Any]) -> str:
    """Return one ``/events`` item as a line."""
    if event.get("type") == "dropped":
        return f"... {event.get('count')} transitions dropped (this client read too slowly)\n"
    at = datetime.fromtimestamp(float(event.get("at", 0.0)), tz=UTC).strftime("%H:%M:%S.%f")[:-3]
    line = (
        f"{at} {event['model']}: {event['src']} -> {event['dst']} "
        f"({event['input']}, {float(event['duration_s']):.3f}s in {event['src']})"
    )
    if event.get("last_error") and event["dst"] in ("UNLOADED", "BREAKER_OPEN"):
        line += f" last error: {' '.join(str(event['last_error']).split())[:120]}"
    return line + "\n"


class StatusError(Exception):
    """The server could not be asked (unreachable, unauthorized, not an lmsorch server)."""


def _headers() -> dict[str, str]:
    token = os.environ.get(TOKEN_ENV)
    return {"Authorization": f"Bearer {token}"} if token else {}


def _check(response: Any, url: str) -> None:
    if response.status_code == 401:
        raise StatusError(f"{url} wants a token: set {TOKEN_ENV} to the server's token")
    if response.status_code != 200:
        raise StatusError(
            f"{url} answered HTTP {response.status_code}; is it an lmsorch server "
            "(lmsorch serve --http or --metrics)?"
        )


async def show(url: str, out: TextIO, *, timeout: float = 10.0) -> None:
    """Print the status table of the server at ``url``.

    Raises:
        StatusError: the server is unreachable or refused the request.
    """
    import httpx

    target = f"{_base(url)}/status"
    try:
        async with httpx.AsyncClient(timeout=timeout, trust_env=False) as client:
            response = await client.get(target, headers=_headers())
            _check(response, target)
            body = response.json()
    except httpx.HTTPError as exc:
        raise StatusError(f"cannot reach {target}: {str(exc) or type(exc).__name__}") from exc
    except ValueError as exc:
        raise StatusError(f"{target} did not answer JSON: {exc}") from exc
    out.write(format_table(body.get("models", [])))
    out.write(format_scheduler(body.get("scheduler")))
    if not body.get("running", True):
        out.write("(the server's orchestrator is not running: starting or shutting down)\n")


async def watch(url: str, out: TextIO, *, count: int | None = None, timeout: float = 10.0) -> None:
    """Print the status table, then every transition until the server stops (or ``count``).

    Raises:
        StatusError: the server is unreachable or refused the request.
    """
    import json

    import httpx
    import trio

    target = f"{_base(url)}/events"
    seen = 0
    # No read timeout: a quiet server sends nothing until a model changes state.
    limits = httpx.Timeout(timeout, read=None)
    try:
        async with (
            httpx.AsyncClient(timeout=limits, trust_env=False) as client,
            client.stream("GET", target, headers=_headers()) as response,
        ):
            _check(response, target)
            # Stopping early (--count, or a line that is no event) cancels the read in
            # progress: that unwinds httpx's nested body generators cleanly, where leaving
            # the loop (break, raise) would not.
            bad: ValueError | KeyError | None = None
            with trio.CancelScope() as reading:
                async for line in response.aiter_lines():
                    if reading.cancel_called or not line.strip():
                        continue
                    try:
                        seen += _print_item(json.loads(line), out)
                    except (ValueError, KeyError) as exc:
                        bad = exc
                        reading.cancel()
                    if count is not None and seen >= count:
                        reading.cancel()
            if bad is not None:
                raise StatusError(f"{target} sent something that is not an event: {bad}") from bad
            if reading.cancelled_caught:
                return
    except httpx.HTTPError as exc:
        raise StatusError(f"cannot reach {target}: {str(exc) or type(exc).__name__}") from exc
    out.write("-- the server stopped\n")


def _print_item(item: dict[str, Any], out: TextIO) -> int:
    """Print one item of the feed; 1 if it was a transition, else 0."""
    if item.get("type") == "snapshot":
        out.write(format_table(item.get("models", [])))
        out.write("-- watching transitions (Ctrl-C to stop)\n")
    else:
        out.write(format_event(item))
    out.flush()
    return int(item.get("type") == "transition")


def run(args: argparse.Namespace) -> int:
    """Print the table (or watch); exit 1 when the server cannot be asked."""
    import trio

    async def main() -> None:
        if args.watch:
            await watch(args.url, sys.stdout, count=args.count, timeout=args.timeout)
        else:
            await show(args.url, sys.stdout, timeout=args.timeout)

    try:
        trio.run(main)
    except StatusError as exc:
        print(f"lmsorch status: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0
