"""Embedded downloads against a loopback server serving the real demo GGUF (98 MB) (issue 18).

What must hold: a cut connection resumes with ``Range`` and the result is the
exact file; a wrong checksum, a full disk or too little free space leave no
file under a model name (and no partial file either); the downloaded model
then loads.
"""

from __future__ import annotations

import errno
import hashlib
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import BinaryIO

import pytest
import trio

from orchestrator import Config, DownloadFailed, InvalidRequest, open_orchestrator
from orchestrator.backends import llamacpp_download
from orchestrator.backends.base import DownloadProgress
from orchestrator.backends.llamacpp import LlamaCppBackend
from orchestrator.backends.llamacpp_download import fetch_gguf, gguf_source
from orchestrator.backends.provision import DEMO_MODEL

from .conftest import MakeSettings
from .http_file_server import FileServer, Served
from .llamacpp_support import Procs

NAME = DEMO_MODEL.filename
KEY = "smollm2-135m-instruct.q4_1"


@pytest.fixture
async def server(demo_model_dir: Path) -> AsyncIterator[FileServer]:
    served = Served(demo_model_dir / NAME, DEMO_MODEL.sha256)
    srv = FileServer(files={NAME: served})
    async with trio.open_nursery() as nursery:
        await nursery.start(srv.serve)
        yield srv
        nursery.cancel_scope.cancel()


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _leftovers(models: Path) -> list[str]:
    return sorted(p.name for p in models.iterdir()) if models.exists() else []


async def _fetch(
    server: FileServer, models: Path, reports: list[DownloadProgress]
) -> DownloadProgress:
    with trio.fail_after(120):
        return await fetch_gguf(
            server.url(NAME), models, allow_http_loopback=True, report=reports.append
        )


async def test_a_cut_at_half_resumes_with_range_and_verifies(
    server: FileServer, tmp_path: Path
) -> None:
    size = DEMO_MODEL.size_bytes
    server.files[NAME].cut_at = size // 2
    reports: list[DownloadProgress] = []
    result = await _fetch(server, tmp_path, reports)
    assert result.status == "completed"
    assert result.model_key == KEY
    assert _sha256(tmp_path / NAME) == DEMO_MODEL.sha256
    assert _leftovers(tmp_path) == [NAME]  # the .part file became the model
    ranged = [s for s in server.seen if s.method == "GET" and s.range]
    assert len(ranged) == 1
    resumed_from = int(ranged[0].range.removeprefix("bytes=").split("-")[0])  # type: ignore[union-attr]
    assert resumed_from == size // 2
    assert ranged[0].if_range == f'"{DEMO_MODEL.sha256}"'
    assert server.sent_bytes == size  # nothing was fetched twice
    done = [r.downloaded_bytes or 0 for r in reports]
    assert done == sorted(done)
    assert done[-1] == size
    assert all(r.total_bytes == size for r in reports)


async def test_a_second_fetch_finds_it_already_downloaded(
    server: FileServer, tmp_path: Path
) -> None:
    await _fetch(server, tmp_path, [])
    gets = sum(s.method == "GET" for s in server.seen)
    again = await _fetch(server, tmp_path, [])
    assert again.status == "already_downloaded"
    assert sum(s.method == "GET" for s in server.seen) == gets  # no second transfer


async def test_a_checksum_mismatch_leaves_no_model_file(server: FileServer, tmp_path: Path) -> None:
    server.files[NAME].linked_sha = "0" * 64
    with pytest.raises(DownloadFailed, match="nothing was kept") as caught:
        await _fetch(server, tmp_path, [])
    assert DEMO_MODEL.sha256 in str(caught.value)
    assert _leftovers(tmp_path) == []


async def test_a_full_disk_fails_clearly_and_cleans_up(
    server: FileServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The disk fills after 30 MiB: the write that no longer fits fails with ENOSPC.
    real = llamacpp_download._write_chunk
    room = [30 << 20]

    def write(fh: BinaryIO, digest: hashlib._Hash, data: bytes) -> None:
        if len(data) > room[0]:
            raise OSError(errno.ENOSPC, "No space left on device")
        room[0] -= len(data)
        real(fh, digest, data)

    monkeypatch.setattr(llamacpp_download, "_write_chunk", write)
    with pytest.raises(DownloadFailed, match=r"is full after \d+ bytes of 98362432") as caught:
        await _fetch(server, tmp_path, [])
    written = int(str(caught.value).split(" is full after ")[1].split()[0])
    assert 29 << 20 <= written <= 30 << 20
    assert "partial file was removed" in str(caught.value)
    assert _leftovers(tmp_path) == []


async def test_too_little_free_space_refuses_before_the_first_byte(
    server: FileServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(
        shutil, "disk_usage", lambda _path: usage._replace(free=DEMO_MODEL.size_bytes - 1)
    )
    with pytest.raises(DownloadFailed, match="not enough disk space"):
        await _fetch(server, tmp_path, [])
    assert not any(s.method == "GET" for s in server.seen)
    assert _leftovers(tmp_path) == []


async def test_a_cancelled_download_keeps_a_hidden_part_that_the_next_call_resumes(
    server: FileServer, tmp_path: Path
) -> None:
    reports: list[DownloadProgress] = []
    with trio.CancelScope() as scope:

        def cancel_at_a_third(report: DownloadProgress) -> None:
            reports.append(report)
            if (report.downloaded_bytes or 0) >= DEMO_MODEL.size_bytes // 3:
                scope.cancel()

        await fetch_gguf(
            server.url(NAME), tmp_path, allow_http_loopback=True, report=cancel_at_a_third
        )
    assert scope.cancelled_caught
    assert _leftovers(tmp_path) == [f".{NAME}.part"]  # hidden: the catalogue skips it
    kept = (tmp_path / f".{NAME}.part").stat().st_size
    result = await _fetch(server, tmp_path, [])
    assert result.status == "completed"
    assert _sha256(tmp_path / NAME) == DEMO_MODEL.sha256
    assert [s.range for s in server.seen if s.method == "GET"][-1] == f"bytes={kept}-"


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://example.com/a/resolve/main/m.gguf", "https URL"),
        ("ftp://127.0.0.1/m.gguf", "https URL"),
        ("https://huggingface.co/a/b/resolve/main/readme.md", "does not name a .gguf"),
        ("qwen/qwen3-4b", "https URL"),
    ],
)
def test_sources_other_than_an_https_gguf_url_are_refused(url: str, why: str) -> None:
    with pytest.raises(InvalidRequest, match=why):
        gguf_source(url, allow_http_loopback=True)


def test_plain_http_to_loopback_needs_the_setting_and_blob_urls_become_resolve() -> None:
    with pytest.raises(InvalidRequest, match="DOWNLOAD_ALLOW_HTTP_LOOPBACK"):
        gguf_source("http://127.0.0.1:8000/m.gguf", allow_http_loopback=False)
    url, name = gguf_source(
        "https://huggingface.co/o/r-GGUF/blob/main/M%20Q4.gguf", allow_http_loopback=False
    )
    assert url == "https://huggingface.co/o/r-GGUF/resolve/main/M%20Q4.gguf"
    assert name == "M Q4.gguf"


async def test_download_then_load_through_the_orchestrator(
    server: FileServer, tmp_path: Path, make_settings: MakeSettings, procs: Procs
) -> None:
    settings = make_settings(models_dir=str(tmp_path), download_allow_http_loopback=True)
    backend = LlamaCppBackend(settings)
    try:
        async with open_orchestrator(backend, Config(allow_downloads=True)) as orch:
            assert KEY not in [m.key for m in await orch.catalog()]
            job, joined = orch.downloads.start(server.url(NAME))
            assert not joined
            with trio.fail_after(120):
                done = await orch.downloads.wait(job.job_id, timeout_s=120)
            assert done.state == "completed", done.error
            assert done.model_key == KEY
            assert done.new_models == (KEY,)
            assert done.downloaded_bytes == done.total_bytes == DEMO_MODEL.size_bytes
            with trio.fail_after(60):
                status = await orch.ensure_loaded(KEY)
            assert status.state.value == "READY"
            assert KEY in [m.key for m in await backend.list_loaded()]
    finally:
        await backend.aclose()
