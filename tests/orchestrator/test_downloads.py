"""DownloadManager: jobs, single-flight, waits, cancellation, shutdown, memory of finished jobs."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import trio

from orchestrator import Config, DownloadFailed, ModelInfo, UnknownDownload, open_orchestrator
from orchestrator.backends.base import DownloadProgress
from orchestrator.downloads import KEEP_FINISHED
from orchestrator.testing import FakeBackend


class DownloadingBackend(FakeBackend):
    """A FakeBackend that downloads: each source waits for its gate, then joins the catalogue."""

    stops_on_cancel = True

    def __init__(self) -> None:
        super().__init__(["model-a"])
        self.gates: dict[str, trio.Event] = {}
        self.started: list[str] = []
        self.stopped: list[str] = []
        self.fail: set[str] = set()

    async def download(
        self,
        source: str,
        *,
        quantization: str | None,
        report: Callable[[DownloadProgress], None],
    ) -> DownloadProgress:
        self.started.append(source)
        report(DownloadProgress(status="downloading", downloaded_bytes=10, total_bytes=100))
        try:
            await self.gates.setdefault(source, trio.Event()).wait()
        except trio.Cancelled:
            self.stopped.append(source)
            raise
        if source in self.fail:
            raise DownloadFailed(f"{source}: checksum mismatch")
        self.catalog[source] = ModelInfo(key=source)
        return DownloadProgress(status="completed", downloaded_bytes=100, total_bytes=100)


ALLOWED = Config(allow_downloads=True)


async def test_a_job_reports_progress_and_its_new_model(autojump_clock: trio.abc.Clock) -> None:
    backend = DownloadingBackend()
    async with open_orchestrator(backend, ALLOWED) as orch:
        job, joined = orch.downloads.start("m-new")
        assert not joined
        await trio.sleep(5)
        running = orch.downloads.status(job.job_id)
        assert (running.state, running.downloaded_bytes, running.total_bytes) == (
            "downloading",
            10,
            100,
        )
        assert running.bytes_per_second == pytest.approx(10 / 5, rel=0.01)
        assert running.eta_s == pytest.approx(90 / 2, rel=0.01)
        backend.gates["m-new"].set()
        done = await orch.downloads.wait(job.job_id, timeout_s=10)
        assert (done.state, done.model_key, done.new_models) == ("completed", "m-new", ("m-new",))
        assert (await orch.ensure_loaded("m-new")).state.value == "READY"


async def test_a_wait_that_runs_out_returns_the_running_job(
    autojump_clock: trio.abc.Clock,
) -> None:
    backend = DownloadingBackend()
    async with open_orchestrator(backend, ALLOWED) as orch:
        job, _ = orch.downloads.start("slow")
        waited = await orch.downloads.wait(job.job_id, timeout_s=30)
        assert waited.state == "downloading"
        assert waited.elapsed_s == pytest.approx(30, abs=0.1)
        backend.gates["slow"].set()


async def test_single_flight_cancel_failure_and_shutdown(autojump_clock: trio.abc.Clock) -> None:
    backend = DownloadingBackend()
    backend.fail.add("bad")
    async with open_orchestrator(backend, ALLOWED) as orch:
        one, _ = orch.downloads.start("x")
        two, joined = orch.downloads.start("x")
        other, _ = orch.downloads.start("x", "Q8_0")  # another quantisation: another job
        assert (two.job_id, joined) == (one.job_id, True)
        assert other.job_id != one.job_id
        orch.downloads.cancel(one.job_id)
        cancelled = await orch.downloads.wait(one.job_id, timeout_s=10)
        assert cancelled.state == "cancelled"
        assert cancelled.error == "cancelled"  # this backend stops: no "may go on"
        backend.gates["bad"] = trio.Event()
        backend.gates["bad"].set()
        bad, _ = orch.downloads.start("bad")
        failed = await orch.downloads.wait(bad.job_id, timeout_s=10)
        assert (failed.state, failed.error) == ("failed", "bad: checksum mismatch")
        left = orch.downloads.start("left-running")[0]
    assert sorted(backend.stopped) == ["left-running", "x", "x"]
    assert orch.downloads.status(left.job_id).error == "cancelled: the server stopped"
    assert orch.downloads.status(other.job_id).state == "cancelled"


async def test_finished_jobs_are_remembered_up_to_a_bound(autojump_clock: trio.abc.Clock) -> None:
    backend = DownloadingBackend()
    async with open_orchestrator(backend, ALLOWED) as orch:
        ids = []
        for n in range(KEEP_FINISHED + 3):
            backend.gates[f"m{n}"] = trio.Event()
            backend.gates[f"m{n}"].set()
            job, _ = orch.downloads.start(f"m{n}")
            ids.append(job.job_id)
            await orch.downloads.wait(job.job_id, timeout_s=10)
        kept = [j.job_id for j in orch.downloads.jobs()]
        assert len(kept) == KEEP_FINISHED + 1  # the newest start came before its eviction
        assert kept == ids[-len(kept) :]
        with pytest.raises(UnknownDownload, match=f"no download job '{ids[0]}'"):
            orch.downloads.status(ids[0])
