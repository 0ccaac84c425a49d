"""LM Studio downloads through the orchestrator against the simulator (issue 18, findings F1).

REST v1 download + status, then a load; already downloaded; a failure midway;
two requests for one model sharing one job; ``lms get -y`` without REST v1 and
for ``key@quant``; the ``allow_downloads`` gate. Invariants are checked in
the simulator's own state (its catalogue, its jobs, the requests it received).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio

from orchestrator import (
    Config,
    DownloadJob,
    DownloadsDisabled,
    Orchestrator,
    UnknownModel,
    open_orchestrator,
)
from orchestrator.testing import FakeBackend
from tests.fakes import SimModel, Simulator, open_simulator
from tests.fakes.fixtures import install_fake_lms, make_backend, remove_lms

GRANITE = "ibm/granite-4-micro"
QWEN = "qwen/qwen3-4b"
DOWNLOAD = "/api/v1/models/download"
SIZE = 2_279_145_003  # the size in LM Studio's documented example


def _remote(sim: Simulator) -> None:
    model = SimModel(key=GRANITE, size_bytes=SIZE, arch="granite", params="3B")
    sim.downloads.remote[GRANITE] = model
    sim.downloads.remote[f"{GRANITE}@Q8_0"] = SimModel(key=GRANITE, quantization="Q8_0")


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with open_simulator() as s:
        _remote(s)
        yield s


@pytest.fixture
def lms(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    return install_fake_lms(monkeypatch, tmp_path)


async def _finish(orch: Orchestrator, job: DownloadJob) -> DownloadJob:
    with trio.fail_after(10):
        return await orch.downloads.wait(job.job_id, timeout_s=10)


async def test_download_reports_progress_then_the_model_loads(sim: Simulator, lms: str) -> None:
    backend = make_backend(sim, lms_cli=lms)
    seen: list[DownloadJob] = []

    async def watch(job: DownloadJob) -> None:
        seen.append(job)

    async with open_orchestrator(backend, Config(allow_downloads=True)) as orch:
        with pytest.raises(UnknownModel):
            await orch.ensure_loaded(GRANITE)
        job, joined = orch.downloads.start(GRANITE)
        assert (job.state, joined) == ("downloading", False)
        with trio.fail_after(10):
            done = await orch.downloads.wait(job.job_id, timeout_s=10, on_progress=watch)
        assert done.state == "completed", done.error
        assert done.model_key == GRANITE
        assert done.new_models == (GRANITE,)
        assert done.downloaded_bytes == done.total_bytes == SIZE
        partial = [j for j in seen if j.downloaded_bytes and j.downloaded_bytes < SIZE]
        assert partial, "no progress between start and completion was reported"
        assert all(j.total_bytes == SIZE for j in partial)
        assert any(j.bytes_per_second and j.eta_s is not None for j in partial)
        assert sim.count(DOWNLOAD, method="POST") == 1
        assert sim.count(f"/api/v1/models/download/status/{_sim_job(sim)}") >= 1
        with trio.fail_after(10):
            status = await orch.ensure_loaded(GRANITE)
        assert status.state.value == "READY"
        assert [i.key for i in sim.state.instances.values()] == [GRANITE]
        listed = {m.key: m for m in await orch.catalog()}
        assert listed[GRANITE].params == "3B"
        assert listed[GRANITE].architecture == "granite"
    await backend.aclose()


def _sim_job(sim: Simulator) -> str:
    (job_id,) = sim.downloads.jobs
    return job_id


async def test_a_model_on_disk_is_already_downloaded(sim: Simulator) -> None:
    backend = make_backend(sim)
    async with open_orchestrator(backend, Config(allow_downloads=True)) as orch:
        job, _ = orch.downloads.start(QWEN)
        done = await _finish(orch, job)
    assert done.state == "already_downloaded"
    assert done.model_key == QWEN
    assert sim.downloads.jobs == {}  # LM Studio started no job
    assert not [c for c in sim.calls if c.path.startswith(f"{DOWNLOAD}/status")]
    await backend.aclose()


async def test_a_download_failing_midway_says_so_and_adds_nothing(sim: Simulator) -> None:
    sim.downloads.fail_at[GRANITE] = 0.5
    backend = make_backend(sim)
    async with open_orchestrator(backend, Config(allow_downloads=True)) as orch:
        job, _ = orch.downloads.start(GRANITE)
        done = await _finish(orch, job)
        assert done.state == "failed"
        assert done.error is not None
        assert f"download of {GRANITE!r}" in done.error
        assert f"failed after {SIZE // 2} of {SIZE} bytes" in done.error
        assert GRANITE not in sim.state.catalog
        with pytest.raises(UnknownModel):
            await orch.ensure_loaded(GRANITE)
    await backend.aclose()


async def test_two_requests_for_one_model_share_one_job(sim: Simulator) -> None:
    backend = make_backend(sim)
    async with open_orchestrator(backend, Config(allow_downloads=True)) as orch:
        first, joined_first = orch.downloads.start(GRANITE)
        second, joined_second = orch.downloads.start(GRANITE)
        assert (joined_first, joined_second) == (False, True)
        assert second.job_id == first.job_id
        async with trio.open_nursery() as nursery:
            for job in (first, second):
                nursery.start_soon(_finish, orch, job)
        assert orch.downloads.status(first.job_id).state == "completed"
        assert sim.count(DOWNLOAD, method="POST") == 1
        assert len(sim.downloads.jobs) == 1
        # A job that has finished is not joined: a new request asks LM Studio again.
        third, joined_third = orch.downloads.start(GRANITE)
        assert not joined_third
        assert (await _finish(orch, third)).state == "already_downloaded"
    await backend.aclose()


async def test_without_rest_v1_lms_get_downloads(lms: str) -> None:
    async with open_simulator(api="v0") as sim:
        _remote(sim)
        backend = make_backend(sim, lms_cli=lms)
        async with open_orchestrator(backend, Config(allow_downloads=True)) as orch:
            job, _ = orch.downloads.start(GRANITE)
            done = await _finish(orch, job)
            assert done.state == "completed", done.error
            assert done.model_key == GRANITE
            again = await _finish(orch, orch.downloads.start(GRANITE)[0])
            assert again.state == "already_downloaded"
        assert [c.argv[:3] for c in sim.cli_runs("get")] == [("get", GRANITE, "-y")] * 2
        assert sim.count(DOWNLOAD, method="POST") == 0
        assert GRANITE in sim.state.catalog
        await backend.aclose()


async def test_key_at_quant_goes_to_lms_get_and_an_unknown_variant_fails(
    sim: Simulator, lms: str
) -> None:
    backend = make_backend(sim, lms_cli=lms)
    async with open_orchestrator(backend, Config(allow_downloads=True)) as orch:
        done = await _finish(orch, orch.downloads.start(GRANITE, "Q8_0")[0])
        assert done.state == "completed", done.error
        assert sim.state.catalog[GRANITE].quantization == "Q8_0"
        bad = await _finish(orch, orch.downloads.start("ibm/granite-4-micro@Q2_K")[0])
    assert bad.state == "failed"
    assert bad.error is not None
    assert "Cannot find variant Q2_K" in bad.error
    assert [c.argv[1] for c in sim.cli_runs("get")] == [f"{GRANITE}@Q8_0", f"{GRANITE}@Q2_K"]
    assert sim.count(DOWNLOAD, method="POST") == 0
    await backend.aclose()


async def test_cancelling_says_lm_studio_may_go_on(sim: Simulator) -> None:
    sim.downloads.duration_s = 60.0
    backend = make_backend(sim)
    async with open_orchestrator(backend, Config(allow_downloads=True)) as orch:
        job, _ = orch.downloads.start(GRANITE)
        with trio.fail_after(10):
            await sim.wait_for(lambda: sim.count(DOWNLOAD, method="POST") == 1)
        orch.downloads.cancel(job.job_id)
        done = await _finish(orch, job)
    assert done.state == "cancelled"
    assert done.error is not None
    assert "may go on" in done.error
    await backend.aclose()


async def test_downloads_are_off_unless_enabled(
    sim: Simulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    remove_lms(monkeypatch, tmp_path)
    backend = make_backend(sim)
    async with open_orchestrator(backend, Config()) as orch:
        with pytest.raises(DownloadsDisabled, match="LMSORCH_ALLOW_DOWNLOADS=1"):
            orch.downloads.start(GRANITE)
    assert sim.count(DOWNLOAD, method="POST") == 0
    await backend.aclose()
    async with open_orchestrator(FakeBackend(["m"]), Config(allow_downloads=True)) as orch:
        with pytest.raises(DownloadsDisabled, match="backend cannot download"):
            orch.downloads.start("m")
