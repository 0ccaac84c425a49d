"""Worker processes that fail: they give clear errors and never leave a process behind."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import trio

from orchestrator.backends import llamacpp_host
from orchestrator.backends.llamacpp import LlamaCppBackend
from orchestrator.errors import BackendRejected, BackendServerError, BackendTimeout

from .conftest import MakeSettings
from .llamacpp_support import DEMO_KEY, FakeServer, Procs


async def test_worker_dying_during_load_reports_its_output(
    make_settings: MakeSettings, fake_server: Callable[[str], FakeServer], procs: Procs
) -> None:
    fake = fake_server(
        "print('main: error: simulated crash while loading', file=sys.stderr)\nsys.exit(7)\n"
    )
    backend = LlamaCppBackend(make_settings(server_binary=str(fake.path)))

    with trio.fail_after(30), pytest.raises(BackendServerError) as info:
        await backend.load(DEMO_KEY, identifier="dies", ttl_s=60)

    assert "exited with code 7" in str(info.value)
    assert "simulated crash while loading" in str(info.value)
    assert info.value.transient
    assert await backend.list_loaded() == []
    assert not procs.alive(fake.pid())


async def test_worker_that_never_answers_times_out_and_is_killed(
    make_settings: MakeSettings, fake_server: Callable[[str], FakeServer], procs: Procs
) -> None:
    # Ignores SIGTERM, so stopping it takes the SIGKILL path (of the worker; the
    # kernel then kills this grandchild through PR_SET_PDEATHSIG).
    fake = fake_server(
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\nwhile True: time.sleep(60)\n"
    )
    backend = LlamaCppBackend(
        make_settings(server_binary=str(fake.path), start_timeout_s=0.5, stop_timeout_s=0.2)
    )

    with trio.fail_after(30), pytest.raises(BackendTimeout, match=r"did not answer /health"):
        await backend.load(DEMO_KEY, identifier="hangs", ttl_s=60)

    assert await backend.list_loaded() == []
    await procs.gone(fake.pid())


async def test_truncated_model_is_rejected_by_llama_cpp_with_its_reason(
    tmp_path: Path, demo_model_dir: Path, make_settings: MakeSettings, procs: Procs
) -> None:
    source = next(demo_model_dir.glob("SmolLM2-135M-Instruct.Q4_1.gguf"))
    with source.open("rb") as fh:
        (tmp_path / "half.gguf").write_bytes(fh.read(50_000_000))
    backend = LlamaCppBackend(make_settings(models_dir=str(tmp_path)))

    with trio.fail_after(30), pytest.raises(BackendRejected) as info:
        await backend.load("half", identifier="half", ttl_s=60)

    assert "could not load 'half'" in str(info.value)
    assert "not within the file bounds" in str(info.value)
    assert await backend.list_loaded() == []


def _listen_below_ephemeral_range() -> socket.socket:
    """Listen on a port P whose neighbour P + 1 is free, both below the ephemeral range.

    The kernel hands out ephemeral ports to any process's outgoing connection or
    ``bind(0)`` at any moment, so P + 1 there can be taken between this check and the
    worker's bind (this test once failed so in CI); below the range only an explicit
    bind takes a port.
    """
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    for port in range(low - 2000, low - 1):
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            sock.close()
            continue
        if llamacpp_host.port_is_free(port + 1):
            sock.listen()
            return sock
        sock.close()
    raise AssertionError(f"no two adjacent free ports in {low - 2000}-{low - 1}")


async def test_port_taken_after_the_check_is_retried_on_the_next_port(
    make_settings: MakeSettings, procs: Procs, monkeypatch: pytest.MonkeyPatch
) -> None:
    with _listen_below_ephemeral_range() as taken:
        port = taken.getsockname()[1]
        # Pretend every port looks free, as when another process grabs one
        # between our check and the worker's bind.
        monkeypatch.setattr(llamacpp_host, "port_is_free", lambda _port: True)
        backend = LlamaCppBackend(make_settings(port_min=port, port_max=port + 1))
        try:
            with trio.fail_after(30):
                await backend.load(DEMO_KEY, identifier="retried", ttl_s=60)
            assert backend.base_url("retried") == f"http://127.0.0.1:{port + 1}/v1"
        finally:
            await backend.aclose()


async def test_cancelled_load_leaves_no_process(
    llama_backend: LlamaCppBackend, procs: Procs
) -> None:
    pid = None
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(lambda: llama_backend.load(DEMO_KEY, identifier="cancel", ttl_s=60))
            # Cancel once the worker process exists but before it is ready.
            while pid is None:
                await trio.sleep(0.005)
                pid = llama_backend.worker_pid("cancel")
            nursery.cancel_scope.cancel()

    assert await llama_backend.list_loaded() == []
    assert llama_backend.worker_pid("cancel") is None
    await procs.gone(pid)


async def test_workers_die_with_a_killed_orchestrator(demo_model_dir: Path, procs: Procs) -> None:
    holder_code = (
        "import sys, trio\n"
        "from orchestrator.backends.llamacpp import LlamaCppBackend\n"
        "from orchestrator.config import LlamaCppSettings\n"
        "async def main():\n"
        f"    settings = LlamaCppSettings(models_dir={str(demo_model_dir)!r}, threads=1)\n"
        "    b = LlamaCppBackend(settings)\n"
        f"    await b.load({DEMO_KEY!r}, identifier='held', ttl_s=60)\n"
        "    print('WORKER_PID', b.worker_pid('held'), flush=True)\n"
        "    await trio.sleep_forever()\n"
        "trio.run(main)\n"
    )
    holder = await trio.lowlevel.open_process(
        [sys.executable, "-c", holder_code],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        cwd=os.getcwd(),
    )
    stdout = holder.stdout
    assert stdout is not None
    try:
        with trio.fail_after(60):
            output = b""
            while b"WORKER_PID" not in output or not output.endswith(b"\n"):
                chunk = await stdout.receive_some()
                assert chunk, f"the holder process exited before loading: {output!r}"
                output += chunk
        worker = int(output.split(b"WORKER_PID")[1].split()[0])
        assert procs.alive(worker)
        holder.send_signal(signal.SIGKILL)  # no cleanup code runs in the orchestrator
        await holder.wait()
        await procs.gone(worker)
    finally:
        if holder.returncode is None:
            holder.kill()
        await holder.wait()
        await stdout.aclose()
