"""``lmsorch models download``, a real process, against a loopback Hugging Face-shaped server.

The download itself is tested in ``test_llamacpp_download.py``; this checks the
command: the verified file under its model name, a second run that fetches
nothing, a refused source that leaves nothing, and the exit codes.
"""

from __future__ import annotations

import hashlib
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path

import pytest
import trio

from orchestrator.backends.provision import DEMO_MODEL
from tests.backends.http_file_server import FileServer, Served
from tests.fakes import SimModel, open_simulator
from tests.reliability.server_process import server_env, simulator_server_env

NAME = DEMO_MODEL.filename
KEY = "smollm2-135m-instruct.q4_1"


@pytest.fixture
async def server(demo_model_dir: Path) -> AsyncIterator[FileServer]:
    srv = FileServer(files={NAME: Served(demo_model_dir / NAME, DEMO_MODEL.sha256)})
    async with trio.open_nursery() as nursery:
        await nursery.start(srv.serve)
        yield srv
        nursery.cancel_scope.cancel()


def _command(tmp_path: Path, source: str, **env: str) -> tuple[list[str], dict[str, str]]:
    argv = [sys.executable, "-m", "mcp_frontend.cli", "models", "download", source]
    settings = {
        "LMSORCH_BACKEND": "llamacpp",
        "LMSORCH_LLAMACPP_MODELS_DIR": str(tmp_path / "models"),
    }
    return argv, server_env(tmp_path, **(settings | env))


async def _download(tmp_path: Path, source: str, **env: str) -> subprocess.CompletedProcess[bytes]:
    argv, environment = _command(tmp_path, source, **env)
    with trio.fail_after(120):
        return await trio.run_process(
            argv, env=environment, capture_stdout=True, capture_stderr=True, check=False
        )


async def test_a_gguf_url_lands_verified_under_its_model_name_once(
    server: FileServer, tmp_path: Path
) -> None:
    loopback = {"LMSORCH_LLAMACPP_DOWNLOAD_ALLOW_HTTP_LOOPBACK": "true"}
    first = await _download(tmp_path, server.url(NAME), **loopback)

    assert first.returncode == 0, first.stderr.decode()
    assert first.stdout.decode().startswith(f"{KEY}: downloaded in ")
    assert f"load_model(model='{KEY}')" in first.stdout.decode()
    path = tmp_path / "models" / NAME
    assert hashlib.sha256(path.read_bytes()).hexdigest() == DEMO_MODEL.sha256
    assert sorted(p.name for p in path.parent.iterdir()) == [NAME]  # no partial file left
    fetched = sum(1 for s in server.seen if s.method == "GET" and s.path.startswith("/cdn/"))

    again = await _download(tmp_path, server.url(NAME), **loopback)

    assert again.returncode == 0, again.stderr.decode()
    assert again.stdout.decode().startswith(f"{KEY}: already downloaded in ")
    refetched = sum(1 for s in server.seen if s.method == "GET" and s.path.startswith("/cdn/"))
    assert refetched == fetched  # no byte fetched twice


async def test_ctrl_c_stops_it_and_the_same_command_resumes(
    server: FileServer, tmp_path: Path
) -> None:
    loopback = {"LMSORCH_LLAMACPP_DOWNLOAD_ALLOW_HTTP_LOOPBACK": "true"}
    stall = 10_000_000
    server.files[NAME].stall_at = stall  # the transfer hangs there until the user gives up
    part = tmp_path / "models" / f".{NAME}.part"
    argv, env = _command(tmp_path, server.url(NAME), **loopback)
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            run = partial(trio.run_process, argv, env=env, stderr=subprocess.PIPE, check=False)
            proc: trio.Process = await nursery.start(run)
            while server.sent_bytes < stall or not part.exists():
                await trio.sleep(0.01)  # bounded above: the bytes before the stall arrive
            proc.send_signal(signal.SIGINT)
            assert proc.stderr is not None
            err = b"".join([chunk async for chunk in proc.stderr]).decode()
    assert proc.returncode == 130
    assert "interrupted; run the same command again to resume" in err
    assert "Traceback" not in err
    assert [p.name for p in part.parent.iterdir()] == [part.name]  # no file under a model name
    kept = part.stat().st_size
    assert 0 < kept <= stall

    again = await _download(tmp_path, server.url(NAME), **loopback)

    assert again.returncode == 0, again.stderr.decode()
    assert (
        hashlib.sha256((tmp_path / "models" / NAME).read_bytes()).hexdigest() == DEMO_MODEL.sha256
    )
    resumed = [s for s in server.seen if s.path.startswith("/cdn/") and s.range is not None]
    assert resumed
    assert resumed[-1].range == f"bytes={kept}-"  # only what was missing


async def test_a_refused_source_says_why_and_leaves_nothing(
    server: FileServer, tmp_path: Path
) -> None:
    # Plain http is refused unless the loopback exception is configured.
    result = await _download(tmp_path, server.url(NAME))

    assert result.returncode == 1
    err = result.stderr.decode()
    assert err.splitlines()[-1].startswith("lmsorch models: error: ")
    assert "DOWNLOAD_ALLOW_HTTP_LOOPBACK" in err
    assert "Traceback" not in err
    models = tmp_path / "models"
    assert not models.exists() or list(models.iterdir()) == []
    assert not [s for s in server.seen if s.path.startswith("/cdn/")]


async def test_a_bad_setting_is_a_configuration_error(tmp_path: Path) -> None:
    result = await _download(tmp_path, "https://example.invalid/x.gguf", LMSORCH_BACKEND="nope")

    assert result.returncode == 2
    assert "LMSORCH_BACKEND" in result.stderr.decode()


async def test_on_lm_studio_a_catalogue_key_is_downloaded_by_lm_studio(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    granite = "ibm/granite-4-micro"
    async with open_simulator() as sim:
        sim.downloads.remote[granite] = SimModel(key=granite, size_bytes=2_279_145_003)
        env = simulator_server_env(sim, monkeypatch, tmp_path, granite, LMSORCH_BACKEND="lmstudio")
        argv = [sys.executable, "-m", "mcp_frontend.cli", "models", "download", granite]
        with trio.fail_after(60):
            result = await trio.run_process(
                argv, env=env, capture_stdout=True, capture_stderr=True, check=False
            )

        assert result.returncode == 0, result.stderr.decode()
        assert result.stdout.decode().startswith(f"{granite}: downloaded in ")
        assert "\n  downloading" in result.stderr.decode()  # progress on stderr
        assert sim.count("/api/v1/models/download", method="POST") == 1
        assert granite in sim.state.catalog  # on LM Studio's disk now
