"""The simulator's model downloads: REST v1 download jobs and ``lms get`` (issue 18, findings F1).

Sources, each behaviour below cites its own:

- ``POST /api/v1/models/download {"model", "quantization"?}`` answers a job
  status object ``{job_id, status, total_size_bytes, started_at}``; a model
  already on disk answers ``{"status": "already_downloaded"}`` without
  ``job_id``, ``total_size_bytes`` or ``started_at`` (docs
  ``1_developer/2_rest/download.md`` @c6854fb).
- ``GET /api/v1/models/download/status/:job_id`` answers ``{job_id, status,
  total_size_bytes, downloaded_bytes, started_at}`` plus ``bytes_per_second``
  and ``estimated_completion`` while ``downloading`` and ``completed_at`` once
  ``completed`` (docs ``download-status.md`` @c6854fb). Status values:
  ``downloading | paused | completed | failed``.
- ``lms get NAME -y`` (lms ``src/subcommands/get.ts`` @07b7252): a model
  already there prints ``Model already downloaded. To use, run: lms load KEY``
  and exits 0 (``maybeExitIfNothingToDownload``); an unknown ``@variant``
  prints ``Cannot find variant Q.`` and exits 1; a finished download prints
  ``Download completed.`` (``handleDownloadWithProgressBar.ts``).
- [inf] Not documented, so ours: the texts for an unknown model (REST 404
  ``model_not_found``, ``lms get`` ``Error: No model found matching ...``) and
  for a failed ``lms get`` (``Error: Download failed ...``); that the model
  appears in the catalogue (``GET /api/v1/models``, ``lms ls``) once its job
  is ``completed``.

Downloads progress with the simulator's clock: each takes :attr:`duration_s`.
The online catalogue LM Studio can fetch from is :attr:`SimDownloads.remote`,
keyed by what a request names (a key, ``key@quant`` or a URL).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import msgspec
import trio

from .sim_state import SimError, SimModel, SimState

if TYPE_CHECKING:
    from .lmstudio_sim import Simulator

__all__ = ["SimDownload", "SimDownloads", "lms_get"]


def _iso(t: float) -> str:
    # Jobs are timed on the simulator's clock; the wall-clock form only has to look right.
    return (
        datetime.fromtimestamp(t, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    )


class SimDownload(msgspec.Struct, kw_only=True):
    """One download job."""

    job_id: str
    name: str
    model: SimModel
    started: float
    duration_s: float
    fail_at: float | None = None
    status: str = "downloading"
    finished: float | None = None

    def downloaded(self, now: float) -> int:
        """Bytes on disk at ``now`` (a failed job stops where it failed)."""
        total = self.model.size_bytes
        if self.status == "completed":
            return total
        share = min(1.0, (now - self.started) / self.duration_s)
        if self.fail_at is not None:
            share = min(share, self.fail_at)
        return int(total * share)


class SimDownloads:
    """Download jobs over a :class:`SimState` (see the module docstring).

    Attributes:
        remote: what LM Studio could download, by the name a request gives.
        jobs: every job by id.
        duration_s: how long each download takes on the simulator's clock.
        fail_at: per name, the share of the file at which its download fails.
    """

    def __init__(self, state: SimState) -> None:
        self._state = state
        self.remote: dict[str, SimModel] = {}
        self.jobs: dict[str, SimDownload] = {}
        self.duration_s = 0.2
        self.fail_at: dict[str, float] = {}

    def settle(self) -> None:
        """Finish the jobs whose time is up: completed ones join the catalogue."""
        now = self._state.now()
        for job in self.jobs.values():
            if job.status != "downloading":
                continue
            if job.fail_at is not None and now - job.started >= job.duration_s * job.fail_at:
                job.status = "failed"
            elif now - job.started >= job.duration_s:
                job.status, job.finished = "completed", now
                self._state.catalog[job.model.key] = job.model

    def start(self, name: str) -> SimDownload | None:
        """Start downloading ``name``; None when it is already on disk.

        Raises:
            SimError: LM Studio cannot find ``name`` (or its ``@variant``).
        """
        self.settle()
        if self._state.catalog.get(name) is not None:
            return None
        model = self.remote.get(name)
        if model is None:
            base = name.partition("@")[0]
            if "@" in name and any(k.partition("@")[0] == base for k in self.remote):
                raise SimError(f"Cannot find variant {name.partition('@')[2]}.")
            raise SimError(f"No model found matching {name!r}", status=404, code="model_not_found")
        if model.key in self._state.catalog:
            return None
        job = SimDownload(
            job_id=f"job_{len(self.jobs) + 1:010x}",
            name=name,
            model=model,
            started=self._state.now(),
            duration_s=self.duration_s,
            fail_at=self.fail_at.get(name),
        )
        self.jobs[job.job_id] = job
        return job

    def answer(self, job: SimDownload) -> dict[str, Any]:
        """The job status object the status route answers."""
        self.settle()
        now = self._state.now()
        total = job.model.size_bytes
        body: dict[str, Any] = {
            "job_id": job.job_id,
            "status": job.status,
            "total_size_bytes": total,
            "downloaded_bytes": job.downloaded(now),
            "started_at": _iso(job.started),
        }
        if job.status == "downloading":
            rate = total / job.duration_s
            body["bytes_per_second"] = rate
            body["estimated_completion"] = _iso(job.started + job.duration_s)
        if job.status == "completed" and job.finished is not None:
            body["completed_at"] = _iso(job.finished)
        return body


def post_download(sim: Simulator, body: dict[str, Any]) -> dict[str, Any]:
    """``POST /api/v1/models/download``."""
    name = body.get("model")
    if not isinstance(name, str) or not name:
        raise SimError('"model" is required', code="missing_required_parameter", param="model")
    quant = body.get("quantization")
    if isinstance(quant, str) and quant:
        name = f"{name}@{quant}"
    job = sim.downloads.start(name)
    if job is None:
        return {"status": "already_downloaded"}
    return {
        "job_id": job.job_id,
        "status": job.status,
        "total_size_bytes": job.model.size_bytes,
        "started_at": _iso(job.started),
    }


def download_status(sim: Simulator, job_id: str) -> dict[str, Any]:
    """``GET /api/v1/models/download/status/:job_id``."""
    job = sim.downloads.jobs.get(job_id)
    if job is None:
        raise SimError(f"No download job with id {job_id!r}", status=404, code="not_found")
    return sim.downloads.answer(job)


async def lms_get(sim: Simulator, args: list[str]) -> tuple[int, str]:
    """``lms get NAME [-y]``: (exit code, stderr); waits for the download to end."""
    names = [a for a in args if not a.startswith("-")]
    if not names:
        return 1, "Error: the simulator's lms get needs a model name\n"
    name = names[0]
    try:
        job = sim.downloads.start(name)
    except SimError as err:
        return 1, (
            err.message if err.message.startswith("Cannot") else f"Error: {err.message}"
        ) + "\n"
    if job is None:
        key = (sim.state.catalog.get(name) or sim.downloads.remote[name]).key
        return 0, f"Model already downloaded. To use, run:\n    lms load {key}\n"
    sim.notify()
    while job.status == "downloading":
        await trio.sleep(job.duration_s / 20)
        sim.downloads.settle()
    if job.status == "failed":
        return 1, f"Error: Download failed after {job.downloaded(sim.state.now())} bytes\n"
    return 0, "Finalizing download...\nDownload completed.\n"
