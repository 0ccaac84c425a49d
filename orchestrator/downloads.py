"""Model downloads as jobs: one per source at a time, watched, waited on, cancelled (issue 18).

A download is long (minutes to hours), so it runs as a job in the
supervisor's nursery (cancelled by :meth:`DownloadManager.close` when the
orchestrator stops), not in the caller's task: a caller starts it and gets a
:class:`DownloadJob` snapshot at once, polls it, or waits for it with progress.
Like loads, downloads are single-flight: a second request for the same source
(and quantisation) while one runs joins that job instead of starting another.

When a job completes, the catalogue is refreshed, so ``load_model`` on the new
key works at once. Finished jobs stay readable for a while (the last
:data:`KEEP_FINISHED`), so a caller that polls late still sees the outcome.
"""

from __future__ import annotations

import itertools
import math
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Literal

import msgspec
import structlog
import trio

from orchestrator.backends.base import Backend, DownloadProgress, Downloads
from orchestrator.catalog import Catalog
from orchestrator.config import Config
from orchestrator.errors import (
    ActorStopped,
    DownloadsDisabled,
    InvalidRequest,
    OrchestratorError,
    UnknownDownload,
    excerpt,
)

__all__ = ["KEEP_FINISHED", "DownloadJob", "DownloadManager", "JobState"]

_log = structlog.get_logger("orchestrator.downloads")

KEEP_FINISHED = 32
"""How many finished jobs stay readable by id."""

JobState = Literal[
    "downloading", "paused", "completed", "already_downloaded", "failed", "cancelled"
]
_FINISHED = frozenset({"completed", "already_downloaded", "failed", "cancelled"})

ENABLE_HINT = (
    "downloads use the network and disk, so they are off by default: set "
    "allow_downloads = true in the config file or LMSORCH_ALLOW_DOWNLOADS=1, then restart"
)


class DownloadJob(msgspec.Struct, frozen=True, kw_only=True):
    """A snapshot of one download job.

    Attributes:
        job_id: this job's id (``dl-1``, ``dl-2``, ...).
        source: what was asked for: a catalogue key or a URL.
        quantization: the quantisation asked for, if any.
        state: ``downloading``, ``paused`` or, once finished, ``completed``,
            ``already_downloaded``, ``failed`` or ``cancelled``.
        downloaded_bytes: bytes so far, when known.
        total_bytes: the size, when known.
        bytes_per_second: the rate (the backend's, else ours since the start).
        eta_s: seconds to completion at that rate, when it can be told.
        elapsed_s: seconds since the job started (until it finished).
        model_key: the key to load once done, when known.
        new_models: catalogue keys that appeared while the job ran.
        error: why it failed or was cancelled.
    """

    job_id: str
    source: str
    quantization: str | None
    state: JobState
    downloaded_bytes: int | None = None
    total_bytes: int | None = None
    bytes_per_second: float | None = None
    eta_s: float | None = None
    elapsed_s: float = 0.0
    model_key: str | None = None
    new_models: tuple[str, ...] = ()
    error: str | None = None

    @property
    def finished(self) -> bool:
        """Whether the job has ended (in any way)."""
        return self.state in _FINISHED


class _Job:
    """A running job's mutable state; callers only ever see :class:`DownloadJob` copies."""

    def __init__(self, job_id: str, source: str, quantization: str | None) -> None:
        self.snapshot = DownloadJob(
            job_id=job_id, source=source, quantization=quantization, state="downloading"
        )
        self.started = trio.current_time()
        self.finished_at: float | None = None
        self.changed = trio.Event()
        self.done = trio.Event()
        self.scope = trio.CancelScope()
        self.rate: float | None = None

    def update(self, **changes: object) -> None:
        self.snapshot = msgspec.structs.replace(self.snapshot, **changes)
        self.changed.set()
        self.changed = trio.Event()

    def progress(self, report: DownloadProgress) -> None:
        self.rate = report.bytes_per_second
        self.update(
            state=report.status,
            downloaded_bytes=report.downloaded_bytes,
            total_bytes=report.total_bytes,
            model_key=report.model_key or self.snapshot.model_key,
        )

    def view(self) -> DownloadJob:
        """The snapshot with the time, rate and ETA as of now."""
        end = self.finished_at if self.finished_at is not None else trio.current_time()
        elapsed = end - self.started
        job = self.snapshot
        done, total, rate = job.downloaded_bytes, job.total_bytes, self.rate
        if rate is None and done and elapsed > 0:
            rate = done / elapsed  # the backend measures none: the average since the start
        eta = None
        if rate and done is not None and total is not None and job.state == "downloading":
            eta = round(max(0.0, (total - done) / rate), 1)
        return msgspec.structs.replace(
            job,
            elapsed_s=round(elapsed, 3),
            bytes_per_second=None if rate is None else round(rate, 1),
            eta_s=eta,
        )


class DownloadManager:
    """Runs downloads on ``backend`` as jobs; see the module docstring.

    Args:
        backend: the backend; downloads are refused unless it is :class:`Downloads`.
        catalog: refreshed when a job completes.
        config: ``allow_downloads``.
        spawn: runs a job's task in a nursery that outlives the caller.
    """

    def __init__(
        self,
        backend: Backend,
        catalog: Catalog,
        config: Config,
        spawn: Callable[..., None],
    ) -> None:
        self._backend = backend
        self._catalog = catalog
        self._config = config
        self._spawn = spawn
        self._ids = itertools.count(1)
        self._running: dict[tuple[str, str | None], _Job] = {}
        self._jobs: OrderedDict[str, _Job] = OrderedDict()
        self._closed = False

    def start(self, source: str, quantization: str | None = None) -> tuple[DownloadJob, bool]:
        """Start downloading ``source``, or join the job already downloading it.

        Returns:
            The job's snapshot, and whether this call joined a running job.

        Raises:
            DownloadsDisabled: ``allow_downloads`` is off, or the backend cannot download.
            InvalidRequest: ``source`` or ``quantization`` is blank.
            ActorStopped: the orchestrator is stopping.
        """
        backend = self._downloader()
        if self._closed:
            raise ActorStopped("the orchestrator is shutting down: no new downloads")
        source = source.strip() if isinstance(source, str) else ""
        if not source:
            raise InvalidRequest("give the model to download: a catalogue key or a URL")
        if quantization is not None and not quantization.strip():
            raise InvalidRequest("quantization must not be blank (omit it for the default)")
        flight = (source, quantization)
        running = self._running.get(flight)
        if running is not None:
            return running.view(), True
        job = _Job(f"dl-{next(self._ids)}", source, quantization)
        self._running[flight] = job
        self._jobs[job.snapshot.job_id] = job
        while len(self._jobs) > KEEP_FINISHED + len(self._running):
            oldest = next(j for j in self._jobs.values() if j.done.is_set())
            del self._jobs[oldest.snapshot.job_id]
        self._spawn(self._run, backend, job, flight)
        _log.info("download_started", job_id=job.snapshot.job_id, source=source)
        return job.view(), False

    def jobs(self) -> list[DownloadJob]:
        """Every job still remembered, oldest first."""
        return [job.view() for job in self._jobs.values()]

    def status(self, job_id: str) -> DownloadJob:
        """Return job ``job_id``'s snapshot.

        Raises:
            UnknownDownload: no such job (or it finished long ago).
        """
        return self._job(job_id).view()

    def cancel(self, job_id: str) -> DownloadJob:
        """Cancel job ``job_id`` (a finished job is left as it is) and return its snapshot.

        Whether the transfer itself stops depends on the backend
        (:attr:`Downloads.stops_on_cancel`); the snapshot's ``error`` says which.
        """
        job = self._job(job_id)
        job.scope.cancel()
        return job.view()

    def close(self) -> None:
        """Cancel every running job and refuse new ones (the orchestrator is stopping)."""
        self._closed = True
        for job in self._running.values():
            job.scope.cancel()

    async def wait(
        self,
        job_id: str,
        *,
        timeout_s: float,
        on_progress: Callable[[DownloadJob], Awaitable[None]] | None = None,
    ) -> DownloadJob:
        """Wait up to ``timeout_s`` for job ``job_id`` to finish; return its snapshot then.

        ``on_progress`` is awaited with each new snapshot meanwhile. Running out of
        time is not an error: the snapshot says the job is still running.
        Cancelling the caller drops only its wait, never the job.
        """
        if not (isinstance(timeout_s, int | float) and timeout_s > 0 and math.isfinite(timeout_s)):
            raise InvalidRequest(f"timeout_s must be a positive number, got {timeout_s!r}")
        job = self._job(job_id)
        with trio.move_on_after(timeout_s):
            while not job.done.is_set():
                changed = job.changed
                if on_progress is not None:
                    await on_progress(job.view())
                await changed.wait()
        return job.view()

    # -- internals --

    def _downloader(self) -> Downloads:
        if not self._config.allow_downloads:
            raise DownloadsDisabled(f"model downloads are disabled; {ENABLE_HINT}")
        if not isinstance(self._backend, Downloads):
            raise DownloadsDisabled(
                f"the {self._backend.name} backend cannot download models; put the model "
                "file where the backend finds it"
            )
        return self._backend

    def _job(self, job_id: str) -> _Job:
        job = self._jobs.get(job_id)
        if job is None:
            known = ", ".join(self._jobs) or "none"
            raise UnknownDownload(f"no download job {excerpt(job_id, 80)!r} (known jobs: {known})")
        return job

    async def _run(self, backend: Downloads, job: _Job, flight: tuple[str, str | None]) -> None:
        source, quantization = flight
        log = _log.bind(job_id=job.snapshot.job_id, source=source)
        try:
            before = await self._keys()
            with job.scope:
                result = await backend.download(
                    source, quantization=quantization, report=job.progress
                )
                job.progress(result)
                after = await self._keys(refresh=True)
                new = tuple(sorted(after - before))
                # The backend's guess if the catalogue has it, else the one new key.
                key = result.model_key
                if key not in after and len(new) == 1:
                    key = new[0]
                job.update(new_models=new, model_key=key)
                log.info("download_finished", state=result.status, model_key=key)
            if job.scope.cancelled_caught:
                why = ": the server stopped" if self._closed else ""
                if not backend.stops_on_cancel:
                    name = self._backend.name
                    why += f"; the {name} backend cannot stop a download, so it may go on there"
                job.update(state="cancelled", error=f"cancelled{why}")
                log.info("download_cancelled")
        except OrchestratorError as exc:
            job.update(state="failed", error=str(exc))
            log.warning("download_failed", error=str(exc))
        finally:
            if not job.snapshot.finished:  # cancelled from outside: the orchestrator's nursery
                job.update(state="cancelled", error="cancelled: the server stopped")
            job.finished_at = trio.current_time()
            del self._running[flight]
            job.done.set()
            job.changed.set()

    async def _keys(self, *, refresh: bool = False) -> set[str]:
        try:
            return {m.key for m in await self._catalog.models(refresh=refresh)}
        except OrchestratorError:
            return set()  # the diff is a nicety; the download itself stands
