"""``lmsorch models download``: fetch a model onto the backend's disk from a terminal.

Its arguments are in :mod:`mcp_frontend.commands.models` (kept light for ``--help``).

The same download the ``download_model`` tool runs (the backend's ``Downloads``:
LM Studio's REST v1 download or ``lms get``; for the embedded backend an https
GGUF URL, resumed and checksum-verified into its models directory), without a
server. ``allow_downloads`` does not apply: it keeps agents from filling the
disk, and here the user asks in person. Progress goes to stderr at most once a
second; Ctrl-C stops it (the embedded backend keeps what arrived, and the same
command resumes it; LM Studio cannot stop a download it started).
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import TextIO

import trio

from mcp_frontend.backend_factory import make_backend
from orchestrator import Backend, Config, ConfigError
from orchestrator.backends.base import DownloadProgress, Downloads
from orchestrator.logs import configure_logging

__all__ = ["run_download"]

_MB = 1_000_000


class _Progress:
    """Writes a download's reports to ``out``, at most one line per ``every_s``."""

    def __init__(self, out: TextIO, every_s: float = 1.0) -> None:
        self._out = out
        self._every_s = every_s
        self._last = -every_s

    def __call__(self, report: DownloadProgress) -> None:
        now = time.monotonic()
        if now - self._last < self._every_s:
            return
        self._last = now
        print(f"  {_describe(report)}", file=self._out, flush=True)


def _describe(report: DownloadProgress) -> str:
    """One line for a report: status, megabytes so far of the total, share and rate."""
    parts: list[str] = [report.status]
    done, total = report.downloaded_bytes, report.total_bytes
    if done is not None and total:
        parts.append(f"{done / _MB:.1f} of {total / _MB:.1f} MB ({100 * done / total:.0f}%)")
    elif done is not None:
        parts.append(f"{done / _MB:.1f} MB")
    if report.bytes_per_second:
        parts.append(f"{report.bytes_per_second / _MB:.1f} MB/s")
    return ", ".join(parts)


async def _download(backend: Backend, source: str, quantization: str | None) -> DownloadProgress:
    """Download with ``backend``, then close it, even when Ctrl-C ends the download."""
    try:
        if not isinstance(backend, Downloads):
            raise ConfigError(f"the {backend.name} backend cannot download models")
        print(f"downloading {source} ({backend.name}) ...", file=sys.stderr, flush=True)
        report = _Progress(sys.stderr)
        return await backend.download(source, quantization=quantization, report=report)
    finally:
        with trio.CancelScope(shield=True):
            await backend.aclose()


def run_download(args: argparse.Namespace) -> int:
    """Download ``args.source``; returns the exit code (130 when interrupted).

    Raises:
        ConfigError: the configuration is invalid, or the backend cannot download.
        OrchestratorError: the download failed (the message says why).
    """
    config = Config.load(args.config)
    # Log lines go to stderr (redacted), as the server's do: stdout carries the result.
    configure_logging(config.log_level, secrets=(config.lmstudio.api_token,))
    backend = make_backend(config, args.backend)
    started = time.perf_counter()
    try:
        result = trio.run(_download, backend, args.source, args.quantization)
    except KeyboardInterrupt:
        again = (
            "run the same command again to resume"
            if isinstance(backend, Downloads) and backend.stops_on_cancel
            else f"the {backend.name} backend may go on downloading it"
        )
        print(f"lmsorch models download: interrupted; {again}", file=sys.stderr)
        return 130
    elapsed = time.perf_counter() - started
    what = "already downloaded" if result.status == "already_downloaded" else "downloaded"
    print(f"{result.model_key or args.source}: {what} in {elapsed:.1f}s")
    if result.model_key:
        print(f"  load it with: load_model(model={result.model_key!r})")
    return 0
