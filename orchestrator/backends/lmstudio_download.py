"""LM Studio downloads: REST v1 download jobs, or ``lms get -y`` (issue 18, findings F1).

REST v1 (LM Studio 0.4.0+, docs ``1_developer/2_rest/download.md`` and
``download-status.md`` @c6854fb)::

    POST /api/v1/models/download {"model": KEY | HF URL, "quantization"?: "Q4_K_M"}
      -> {"job_id"?, "status", "total_size_bytes"?, "started_at"?}
    GET /api/v1/models/download/status/:job_id
      -> {"job_id", "status", "bytes_per_second"?, "estimated_completion"?,
          "completed_at"?, "total_size_bytes"?, "downloaded_bytes"?, "started_at"?}

``status`` is ``downloading``, ``paused``, ``completed``, ``failed`` or (only
from the POST, then without ``job_id``) ``already_downloaded``. ``quantization``
is documented for Hugging Face links only. There is no cancel route.

Without REST v1, or for a ``key@quant`` (the form ``lms get`` takes; REST
documents no variant for catalogue keys), ``lms get NAME -y`` runs instead
(``lms`` ``src/subcommands/get.ts`` @07b7252): ``-y`` picks the recommended
download option, an existing model prints ``Model already downloaded`` and
exits 0, success ends with ``Download completed.``. It reports no progress we
can read (a progress bar), so only the start and the end are reported.

Cancelling stops only our wait: LM Studio goes on with a REST job, and
``lms get`` answers SIGINT by asking whether to continue in the background
(``src/handleDownloadWithProgressBar.ts``), which nobody can answer here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

import msgspec
import trio

from orchestrator.backends.base import DownloadProgress
from orchestrator.backends.lmstudio_cli import LmsCli
from orchestrator.backends.lmstudio_cli_text import cli_error
from orchestrator.backends.lmstudio_rest import LMStudioRest
from orchestrator.backends.lmstudio_support import INSTALL_HINT, ApiLevel
from orchestrator.errors import BackendRejected, DownloadFailed, InvalidRequest, excerpt

__all__ = ["CLI_DOWNLOAD_TIMEOUT_S", "V1DownloadJob", "download_model"]

CLI_DOWNLOAD_TIMEOUT_S: Final = 24 * 3600.0
"""Bound on one ``lms get`` run: a large model on a slow line takes hours."""

Report = Callable[[DownloadProgress], None]


class V1DownloadJob(msgspec.Struct, kw_only=True):
    """A REST v1 download job status object (fields as documented; all but status optional)."""

    status: str
    job_id: str | None = None
    total_size_bytes: int | None = None
    downloaded_bytes: int | None = None
    bytes_per_second: float | None = None
    estimated_completion: str | None = None
    started_at: str | None = None
    completed_at: str | None = None

    def progress(self, model_key: str | None) -> DownloadProgress:
        """Return it as our report (``failed`` is raised by the caller, never reported)."""
        status = self.status if self.status in ("paused", "completed") else "downloading"
        if self.status == "already_downloaded":
            status = "already_downloaded"
        done = self.downloaded_bytes
        if status == "completed" and done is None:
            done = self.total_size_bytes
        return DownloadProgress(
            status=status,  # type: ignore[arg-type]  # narrowed to the Literal above
            downloaded_bytes=done,
            total_bytes=self.total_size_bytes,
            bytes_per_second=self.bytes_per_second,
            model_key=model_key,
        )


def _is_url(source: str) -> bool:
    return source.startswith(("https://", "http://"))


async def download_model(
    rest: LMStudioRest,
    lms: LmsCli | None,
    source: str,
    *,
    quantization: str | None,
    report: Report,
    poll_s: float,
) -> DownloadProgress:
    """Download ``source`` on LM Studio by the best route (see the module docstring).

    Raises:
        InvalidRequest: ``key@quant`` together with ``quantization``.
        DownloadFailed: LM Studio reports the job failed, or ``lms get`` failed.
        BackendRejected: neither REST v1 nor ``lms`` is there.
        BackendError: transport and server failures.
    """
    url = _is_url(source)
    if quantization is not None and not url:
        if "@" in source:
            raise InvalidRequest(
                f"give the quantisation once: {excerpt(source, 120)!r} already names one"
            )
        source, quantization = f"{source}@{quantization}", None
    key = None if url else source.partition("@")[0]
    level = await rest.api_level()
    if level is ApiLevel.REST_V1 and not ("@" in source and lms is not None):
        return await _via_rest(rest, source, quantization, key, report, poll_s)
    if lms is not None:
        if quantization is not None:
            source = f"{source}@{quantization}"  # lms get takes it this way for URLs too
        return await _via_cli(lms, source, key, report)
    raise BackendRejected(
        f"cannot download {source!r}: LM Studio at {rest.root} has no download route "
        f"before 0.4 and the lms CLI was not found; {INSTALL_HINT}"
    )


async def _via_rest(
    rest: LMStudioRest,
    source: str,
    quantization: str | None,
    key: str | None,
    report: Report,
    poll_s: float,
) -> DownloadProgress:
    body: dict[str, str] = {"model": source}
    if quantization is not None:
        body["quantization"] = quantization
    job = await rest.post("/api/v1/models/download", V1DownloadJob, body=msgspec.json.encode(body))
    while True:
        if job.status == "failed":
            raise DownloadFailed(
                f"LM Studio at {rest.root} reports that the download of {source!r} "
                f"(job {job.job_id}) failed after {job.downloaded_bytes or 0} of "
                f"{job.total_size_bytes or '?'} bytes; see LM Studio's downloads panel or logs"
            )
        progress = job.progress(key)
        if progress.status in ("completed", "already_downloaded") or job.job_id is None:
            return progress
        report(progress)
        await trio.sleep(poll_s)
        job = await rest.get(f"/api/v1/models/download/status/{job.job_id}", V1DownloadJob)


async def _via_cli(lms: LmsCli, source: str, key: str | None, report: Report) -> DownloadProgress:
    report(DownloadProgress(status="downloading", model_key=key))
    result = await lms.run(["get", source, "-y"], timeout_s=CLI_DOWNLOAD_TIMEOUT_S)
    if result.returncode != 0:
        error = cli_error(result, what=f"`lms get {source}`")
        raise DownloadFailed(str(error)) if type(error) is BackendRejected else error
    already = b"already downloaded" in (result.stdout + result.stderr).lower()
    return DownloadProgress(status="already_downloaded" if already else "completed", model_key=key)
