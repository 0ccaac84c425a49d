"""Download tools: start a model download, follow it, cancel it (issue 18).

A download is a job in the orchestrator (``Orchestrator.downloads``): it goes
on when the call that started it returns or is cancelled. ``download_model``
with ``wait`` follows it with MCP progress notifications whose ``progress``
and ``total`` are bytes, so a client that resets its timeout on progress
keeps waiting as long as bytes arrive.
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

import anyio
from mcp.server.mcpserver import Context, MCPServer
from mcp.types import ToolAnnotations
from pydantic import Field
from typing_extensions import TypedDict

from mcp_frontend.deps import Deps
from mcp_frontend.errors import tool_errors
from orchestrator import DownloadJob

__all__ = ["DownloadJobOut", "DownloadListOut", "job_out", "register"]

# A download reaches the network (open world) and writes to disk, but replaces nothing.
_DOWNLOAD = ToolAnnotations(destructive_hint=False, idempotent_hint=True, open_world_hint=True)
_READ = ToolAnnotations(read_only_hint=True, idempotent_hint=True, open_world_hint=False)

JobArg = Annotated[str, Field(description="A job id from download_model (dl-1, dl-2, ...).")]


class DownloadJobOut(TypedDict):
    """One download job and where it is."""

    job_id: str
    source: str
    quantization: str | None
    state: str
    """downloading, paused, completed, already_downloaded, failed or cancelled."""
    downloaded_bytes: int | None
    total_bytes: int | None
    bytes_per_second: float | None
    eta_s: float | None
    elapsed_s: float
    model_key: str | None
    """The key to give load_model once it is done, when known."""
    new_models: list[str]
    error: str | None
    joined: bool
    """Whether this call joined a download already running for the same source."""


class DownloadListOut(TypedDict):
    """Every download job this server remembers, oldest first."""

    jobs: list[DownloadJobOut]


def job_out(job: DownloadJob, *, joined: bool = False) -> DownloadJobOut:
    """Convert a job snapshot."""
    return DownloadJobOut(
        job_id=job.job_id,
        source=job.source,
        quantization=job.quantization,
        state=job.state,
        downloaded_bytes=job.downloaded_bytes,
        total_bytes=job.total_bytes,
        bytes_per_second=job.bytes_per_second,
        eta_s=job.eta_s,
        elapsed_s=job.elapsed_s,
        model_key=job.model_key,
        new_models=list(job.new_models),
        error=job.error,
        joined=joined,
    )


def _line(job: DownloadJob) -> str:
    done = job.downloaded_bytes or 0
    line = f"{job.source}: {job.state} {done / 1e6:.1f}"
    line += f"/{job.total_bytes / 1e6:.1f} MB" if job.total_bytes else " MB"
    if job.bytes_per_second:
        line += f" at {job.bytes_per_second / 1e6:.1f} MB/s"
    if job.eta_s is not None:
        line += f", {job.eta_s:.0f}s left"
    return line


def register(mcp: MCPServer[Any], deps: Deps) -> None:
    """Register the download tools on ``mcp``."""
    downloads = deps.orch.downloads

    @mcp.tool(title="Download a model", annotations=_DOWNLOAD)
    async def download_model(
        model: Annotated[
            str,
            Field(
                description="What to download: an LM Studio catalogue key "
                "(ibm/granite-4-micro), key@quant, or a Hugging Face URL (the embedded "
                "backend takes an https .../resolve/<rev>/<file>.gguf URL)."
            ),
        ],
        ctx: Context[Any, Any],
        quantization: Annotated[
            str | None, Field(description="e.g. Q4_K_M; LM Studio only.")
        ] = None,
        wait: bool = False,
        timeout_s: Annotated[
            float,
            Field(gt=0, allow_inf_nan=False, description="With wait: how long to wait at most."),
        ] = 3600.0,
    ) -> DownloadJobOut:
        """Start downloading a model (or join its download in progress) and return the job.

        Off unless the server allows downloads (allow_downloads). Without wait the
        job is returned at once: follow it with download_status. With wait the call
        returns when the job ends or timeout_s passes (the job goes on), reporting
        progress in bytes. Once done, load_model takes the job's model_key.
        """
        with tool_errors():
            job, joined = downloads.start(model, quantization)
            if wait:
                every_s = deps.settings.progress_interval_s
                job = await downloads.wait(
                    job.job_id, timeout_s=timeout_s, on_progress=_reporter(ctx, every_s)
                )
        return job_out(job, joined=joined)

    @mcp.tool(title="Download status", annotations=_READ)
    async def download_status(job_id: str | None = None) -> DownloadListOut:
        """Show one download job (bytes, rate, ETA, the key to load), or every job."""
        with tool_errors():
            jobs = [downloads.status(job_id)] if job_id is not None else downloads.jobs()
        return DownloadListOut(jobs=[job_out(j) for j in jobs])

    @mcp.tool(
        title="Cancel a download",
        annotations=ToolAnnotations(
            destructive_hint=False, idempotent_hint=True, open_world_hint=False
        ),
    )
    async def cancel_download(job_id: JobArg) -> DownloadJobOut:
        """Cancel a download job and return it once it has ended.

        The embedded backend stops it (keeping a hidden partial file that the next
        download_model of that URL resumes); LM Studio cannot stop its downloads from
        here, so it may finish there.
        """
        with tool_errors():
            downloads.cancel(job_id)
            job = await downloads.wait(job_id, timeout_s=30.0)
        return job_out(job)


def _reporter(ctx: Context[Any, Any], every_s: float) -> Callable[[DownloadJob], Awaitable[None]]:
    """Send a job's bytes as MCP progress, at most once per ``every_s``.

    MCP wants ``progress`` to grow with every notification, so a report that
    adds no bytes (a paused job) is not sent.
    """
    gone = False
    last, sent = -math.inf, -1.0

    async def report(job: DownloadJob) -> None:
        nonlocal gone, last, sent
        done = float(job.downloaded_bytes or 0)
        if gone or done <= sent or time.monotonic() - last < every_s:
            return
        last, sent = time.monotonic(), done
        try:
            await ctx.report_progress(
                done,
                None if job.total_bytes is None else float(job.total_bytes),
                _line(job),
            )
        except (anyio.ClosedResourceError, anyio.BrokenResourceError):
            gone = True  # the client went away; the download goes on

    return report
