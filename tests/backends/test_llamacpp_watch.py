"""The embedded backend watches its workers: a death is reported at once, reaped first (issue 16).

With the real demo model: a worker killed with SIGKILL is reported once, after
it was reaped and unlisted, whether it was ready before the watch began or
became ready during it; a worker we stop is never reported. Workers run the
configured number of llama.cpp slots, which the backend reports as its parallelism.
"""

from __future__ import annotations

import errno
import os
import signal

import httpx
import trio
import trio.testing

from orchestrator.backends.base import ConfirmsLoss, KnowsParallelism, WatchesInstances
from orchestrator.backends.llamacpp import LlamaCppBackend

from .conftest import MakeSettings
from .llamacpp_support import DEMO_KEY, Procs


def reaped(pid: int) -> bool:
    """Whether ``pid`` is no child of ours any more (not even a zombie)."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError as exc:
        return exc.errno == errno.ECHILD
    return False


async def test_a_killed_worker_is_reported_once_reaped_and_a_stopped_one_never(
    llama_backend: LlamaCppBackend, procs: Procs
) -> None:
    assert isinstance(llama_backend, WatchesInstances)
    assert isinstance(llama_backend, ConfirmsLoss)
    reports: list[tuple[str, str, bool, int | None]] = []
    reported = trio.Event()

    def lost(identifier: str, reason: str) -> None:
        # What holds at the moment of the report: reaped, and no longer served.
        pid = pids[identifier]
        reports.append((identifier, reason, reaped(pid), llama_backend.worker_pid(identifier)))
        reported.set()

    with trio.fail_after(60):
        await llama_backend.load(DEMO_KEY, identifier="kept", ttl_s=60)  # ready before the watch
        async with trio.open_nursery() as nursery:
            nursery.start_soon(llama_backend.watch_instances, lost)
            await llama_backend.load(DEMO_KEY, identifier="victim", ttl_s=60)  # ready during it
            pids = {name: llama_backend.worker_pid(name) or 0 for name in ("kept", "victim")}
            await trio.testing.wait_all_tasks_blocked()  # both waiters wait on their process
            await llama_backend.unload("kept")
            await procs.gone(pids["kept"])
            os.kill(pids["victim"], signal.SIGKILL)
            await reported.wait()
            await trio.testing.wait_all_tasks_blocked()  # anything else to report, is
            nursery.cancel_scope.cancel()
    [(identifier, reason, was_reaped, served_by)] = reports
    assert identifier == "victim"
    assert "was killed by SIGKILL" in reason
    assert was_reaped
    assert served_by is None
    assert await llama_backend.list_loaded() == []
    assert await llama_backend.confirm_lost("victim") == reason  # how it ended, kept


async def test_a_live_worker_is_not_confirmed_lost(llama_backend: LlamaCppBackend) -> None:
    with trio.fail_after(60):
        await llama_backend.load(DEMO_KEY, identifier="alive", ttl_s=60)
        assert await llama_backend.confirm_lost("alive") is None


async def test_workers_run_the_configured_slots(make_settings: MakeSettings, procs: Procs) -> None:
    backend = LlamaCppBackend(make_settings(parallel=2))
    assert isinstance(backend, KnowsParallelism)
    try:
        with trio.fail_after(60):
            await backend.load(DEMO_KEY, identifier="two", ttl_s=60)
            root = backend.base_url("two").removesuffix("/v1")
            async with httpx.AsyncClient(timeout=30.0, trust_env=False) as http:
                props = (await http.get(f"{root}/props")).json()
    finally:
        await backend.aclose()
    assert props["total_slots"] == 2
    assert backend.max_parallel("two") == 2
