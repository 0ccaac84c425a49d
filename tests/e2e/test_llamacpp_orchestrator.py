"""The real orchestrator over the real embedded backend and the real SmolLM2 model.

Load + verify + chat, idle expiry, a killed worker found LOST and reloaded, and
cancellation of the whole orchestrator: every test ends with no worker process.
"""

from __future__ import annotations

import os
import signal

import httpx
import pytest
import trio

from orchestrator import Config, State, open_orchestrator
from orchestrator.backends.llamacpp import LlamaCppBackend
from orchestrator.errors import ModelNotLoaded
from tests.backends.llamacpp_support import Procs

MODEL = "smollm2-135m-instruct.q4_1"
CHAT = {"messages": [{"role": "user", "content": "Say hello."}], "max_tokens": 16, "temperature": 0}


def config() -> Config:
    return Config(
        default_model=MODEL, verify_deadline_s=10.0, retry_initial_s=0.05, retry_jitter_s=0.0
    )


async def chat(base_url: str, identifier: str) -> dict[str, object]:
    async with httpx.AsyncClient(base_url=base_url, timeout=60.0) as http:
        reply = await http.post("/chat/completions", json={"model": identifier, **CHAT})
    reply.raise_for_status()
    body: dict[str, object] = reply.json()
    return body


async def test_lease_loads_verifies_and_chats(backend: LlamaCppBackend) -> None:
    with trio.fail_after(60):
        async with open_orchestrator(backend, config()) as orch:
            async with orch.lease(MODEL) as lease:
                assert lease.status.state is State.READY
                assert [s.in_flight for s in orch.status()] == [1]
                body = await chat(backend.base_url(lease.identifier), lease.identifier)
            choices = body["choices"]
            assert isinstance(choices, list)
            assert choices[0]["finish_reason"] in ("stop", "length")
            assert [m.identifier for m in await backend.list_loaded()] == [lease.identifier]
            pid = backend.worker_pid(lease.identifier)
        # Leaving the orchestrator unloads what it loaded.
        assert pid is not None
        await Procs.gone(pid)
    assert await backend.list_loaded() == []


async def test_idle_model_expires_and_its_worker_stops(backend: LlamaCppBackend) -> None:
    with trio.fail_after(60):
        async with open_orchestrator(backend, config()) as orch:
            status = await orch.ensure_loaded(MODEL, ttl_s=0.5)
            assert status.ttl_s == 0.5
            pid = backend.worker_pid(status.identifier)
            assert pid is not None
            await Procs.gone(pid)  # the core's idle timer unloaded it
            while orch.status()[0].state is not State.UNLOADED:
                await trio.sleep(0.01)
            assert await backend.list_loaded() == []


async def test_killed_worker_is_lost_then_reloaded(backend: LlamaCppBackend) -> None:
    with trio.fail_after(60):
        async with open_orchestrator(backend, config()) as orch:
            async with orch.lease(MODEL) as lease:
                pid = backend.worker_pid(lease.identifier)
                assert pid is not None
                os.kill(pid, signal.SIGKILL)
                await Procs.gone(pid)
                # What an inference call finds: the model is not served any more.
                with pytest.raises(ModelNotLoaded):
                    backend.base_url(lease.identifier)
                lease.lost("worker killed")
            status = await orch.ensure_loaded(MODEL)
            assert status.state is State.READY
            assert status.generation > lease.status.generation
            new_pid = backend.worker_pid(status.identifier)
            assert new_pid not in (None, pid)
            await chat(backend.base_url(status.identifier), status.identifier)


async def test_cancelled_orchestrator_leaves_no_worker(backend: LlamaCppBackend) -> None:
    pids: list[int] = []
    with trio.fail_after(60):
        with trio.CancelScope() as scope:
            async with open_orchestrator(backend, config()) as orch:
                status = await orch.ensure_loaded(MODEL)
                pid = backend.worker_pid(status.identifier)
                assert pid is not None
                pids.append(pid)
                scope.cancel()
                await trio.sleep_forever()
        assert scope.cancelled_caught
        # The orchestrator's shielded shutdown stopped it; no backend.aclose() needed.
        await Procs.gone(pids[0])
        assert await backend.list_loaded() == []


async def test_cancelled_during_a_load_leaves_no_worker(backend: LlamaCppBackend) -> None:
    with trio.fail_after(60):
        with trio.CancelScope() as scope:
            async with open_orchestrator(backend, config()) as orch, trio.open_nursery() as n:
                n.start_soon(orch.ensure_loaded, MODEL)
                while backend.worker_pid(MODEL) is None:  # the worker is starting
                    await trio.sleep(0.005)
                pid = backend.worker_pid(MODEL)
                scope.cancel()
        assert pid is not None
        await Procs.gone(pid)
        assert await backend.list_loaded() == []
