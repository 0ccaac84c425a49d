"""The simulator itself: LM Studio's semantics that client tests rely on."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import trio
import trio.testing

from . import FAKE_LMS, Simulator, open_simulator
from .fixtures import free_port

QWEN = "qwen/qwen3-4b"
GEMMA = "google/gemma-3-4b"
EMBED = "text-embedding-nomic-embed-text-v1.5"


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with open_simulator() as s:
        yield s


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=5) as client:
        yield client


async def lms(sim: Simulator, *args: str) -> tuple[int, str, str]:
    env = {**os.environ, **sim.lms_env}
    with trio.fail_after(10):
        done = await trio.run_process(
            [sys.executable, FAKE_LMS, *args],
            capture_stdout=True,
            capture_stderr=True,
            check=False,
            env=env,
            stdin=subprocess.DEVNULL,
        )
    return done.returncode, done.stdout.decode(), done.stderr.decode()


def chat(model: str, **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": "hi"}], **extra}


async def test_greeting_and_unknown_routes(sim: Simulator, http: httpx.AsyncClient) -> None:
    assert (await http.get(f"{sim.base_url}/lmstudio-greeting")).json() == {"lmstudio": True}
    odd = await http.post(f"{sim.base_url}/chat/completions", json={})
    assert odd.status_code == 200
    assert odd.json() == {"error": "Unexpected endpoint or method. (POST /chat/completions)"}


async def test_versions_gate_routes(http: httpx.AsyncClient) -> None:
    async with open_simulator(api="v0") as sim:
        v1 = await http.get(f"{sim.base_url}/api/v1/models")
        assert v1.status_code == 200
        assert "Unexpected endpoint" in v1.json()["error"]
        v0 = (await http.get(f"{sim.base_url}/api/v0/models")).json()
        assert {m["id"] for m in v0["data"]} == set(sim.state.catalog)
        assert {m["state"] for m in v0["data"]} == {"not-loaded"}
        embed = next(m for m in v0["data"] if m["id"] == EMBED)
        assert embed["type"] == "embeddings"
    async with open_simulator(api="openai") as sim:
        assert "error" in (await http.get(f"{sim.base_url}/api/v0/models")).json()
        assert "error" in (await http.post(f"{sim.base_url}/v1/responses", json={})).json()


async def test_identifiers_and_jit_auto_evict(sim: Simulator, http: httpx.AsyncClient) -> None:
    assert sim.preload(QWEN).identifier == QWEN
    assert sim.preload(QWEN).identifier == f"{QWEN}:2"
    answer = await http.post(f"{sim.openai_url}/chat/completions", json=chat(GEMMA, ttl=120))
    assert answer.json()["model"] == GEMMA
    assert sim.state.instances[GEMMA].ttl_s == 120
    await http.post(f"{sim.openai_url}/embeddings", json={"model": EMBED, "input": "x"})
    # The JIT-loaded gemma was evicted; explicit loads were not.
    assert sim.loaded() == [QWEN, f"{QWEN}:2", EMBED]
    assert sim.state.instances[EMBED].ttl_s == 3600.0  # the JIT default


async def test_concurrent_cold_jit_requests_load_duplicates(
    sim: Simulator, http: httpx.AsyncClient
) -> None:
    """BT#1751: LM Studio does not coalesce concurrent JIT loads of one model."""
    gate = sim.faults.hold_load(QWEN)

    async def ask() -> None:
        await http.post(f"{sim.openai_url}/chat/completions", json=chat(QWEN))

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            for _ in range(2):
                nursery.start_soon(ask)
            await sim.wait_for(lambda: sim.count("/v1/chat/completions") == 2)
            await trio.testing.wait_all_tasks_blocked()
            gate.set()
    assert sorted(sim.loaded()) == [QWEN, f"{QWEN}:2"]


async def test_openai_models_follow_the_jit_setting(http: httpx.AsyncClient) -> None:
    async with open_simulator(jit=False) as sim:
        sim.preload(QWEN, identifier="mine")
        ids = [m["id"] for m in (await http.get(f"{sim.openai_url}/models")).json()["data"]]
        assert ids == ["mine"]
    async with open_simulator() as sim:
        ids = [m["id"] for m in (await http.get(f"{sim.openai_url}/models")).json()["data"]]
        assert ids == list(sim.state.catalog)
        one = await http.get(f"{sim.openai_url}/models/{QWEN}")
        assert one.json() == {"id": QWEN, "object": "model", "owned_by": "organization_owner"}


async def test_idle_ttl_counts_only_while_idle(sim: Simulator) -> None:
    inst = sim.preload(QWEN, ttl_s=60)
    sim.preload(EMBED)  # no TTL: never expires
    inst.active = 1
    assert sim.state.advance(600) == []
    inst.active = 0
    sim.state.touch(inst)
    assert sim.state.advance(59) == []
    assert sim.state.advance(1) == [QWEN]
    assert sim.loaded() == [EMBED]


async def test_v1_load_and_unload_routes(sim: Simulator, http: httpx.AsyncClient) -> None:
    loaded = await http.post(
        f"{sim.base_url}/api/v1/models/load",
        json={"model": QWEN, "context_length": 8192, "echo_load_config": True},
    )
    assert loaded.json()["instance_id"] == QWEN
    assert loaded.json()["load_config"] == {"context_length": 8192}
    again = await http.post(f"{sim.base_url}/api/v1/models/load", json={"model": QWEN})
    assert again.json()["instance_id"] == f"{QWEN}:2"
    models = (await http.get(f"{sim.base_url}/api/v1/models")).json()["models"]
    qwen = next(m for m in models if m["key"] == QWEN)
    assert [i["id"] for i in qwen["loaded_instances"]] == [QWEN, f"{QWEN}:2"]
    gone = await http.post(f"{sim.base_url}/api/v1/models/unload", json={"instance_id": "x"})
    assert gone.status_code == 404
    assert gone.json()["error"]["code"] == "model_not_found"
    missing = await http.post(f"{sim.base_url}/api/v1/models/load", json={})
    assert missing.json()["error"]["code"] == "missing_required_parameter"


async def test_fake_lms_shares_state(sim: Simulator) -> None:
    code, _, err = await lms(sim, "load", "qwen3", "-y", "--ttl", "30", "--identifier", "q")
    assert code == 0
    assert 'use the identifier "q"' in err
    assert sim.state.instances["q"].ttl_s == 30
    code, out, _ = await lms(sim, "ps", "--json")
    (entry,) = json.loads(out)
    assert (entry["identifier"], entry["modelKey"], entry["ttlMs"], entry["status"]) == (
        "q",
        QWEN,
        30000,
        "idle",
    )
    code, out, _ = await lms(sim, "ls", "--json", "--embedding")
    assert [m["modelKey"] for m in json.loads(out)] == [EMBED]
    code, _, err = await lms(sim, "unload", "not-there")
    assert code == 0  # like the real lms
    assert "Cannot find a model" in err
    assert (await lms(sim, "unload", "q"))[0] == 0
    assert sim.loaded() == []
    assert (await lms(sim, "unload"))[0] == 1  # nothing loaded


async def test_fake_lms_argument_errors(sim: Simulator) -> None:
    code, _, err = await lms(sim, "load", QWEN, "--ttl", "0", "-y")
    assert code == 1
    assert "at least 1" in err
    code, _, err = await lms(sim, "load", "nothing-like-it", "-y")
    assert code == 1
    assert err.startswith('Model not found\n\nNo model found that matches model key "nothing')
    code, _, err = await lms(sim, "load", f"{QWEN}@q4_k_m", "-y")  # load.ts: base keys only
    assert (code, "No model found that matches" in err) == (1, True)
    code, _, err = await lms(sim, "load", QWEN, "--estimate-only", "-c", "8192")
    assert code == 0
    assert err.splitlines()[:2] == [f"Model: {QWEN}", "Context Length: 8,192"]
    assert err.endswith(
        "\nEstimate: This model may be loaded based on your resource guardrails settings.\n"
    )
    code, _, err = await lms(sim, "load", "e")  # matches several; no -y, no terminal
    assert (code, "interactive" in err) == (1, True)
    code, _, err = await lms(sim, "frobnicate")
    assert (code, "unknown command" in err) == (1, True)
    code, out, _ = await lms(sim, "server", "status", "--json")
    assert json.loads(out)["running"] is True


async def test_fake_lms_without_a_simulator_fails_like_a_stopped_lm_studio() -> None:
    env = {k: v for k, v in os.environ.items() if k != "LMS_SIM_URL"}
    with trio.fail_after(10):
        done = await trio.run_process(
            [sys.executable, FAKE_LMS, "ps", "--json"], capture_stderr=True, check=False, env=env
        )
    assert done.returncode == 1
    # lms src/createClient.ts @07b7252, the default (local) host.
    assert done.stderr == b"Error: Failed to start or connect to local LM Studio API server.\n"
    port = str(free_port())
    with trio.fail_after(10):
        done = await trio.run_process(
            [sys.executable, FAKE_LMS, "ps", "--port", port], capture_stderr=True, check=False
        )
    assert done.returncode == 1
    assert f"does not appear to be running at 127.0.0.1:{port}.".encode() in done.stderr


async def test_a_simulator_bug_fails_the_test() -> None:
    statuses: list[int] = []

    async def buggy() -> None:
        async with open_simulator() as sim, httpx.AsyncClient() as http:
            sim.state.catalog[QWEN] = None  # type: ignore[assignment]
            statuses.append((await http.get(f"{sim.base_url}/api/v1/models")).status_code)

    with pytest.raises(AssertionError, match="the simulator crashed"):
        await buggy()
    assert statuses == [500]


async def test_restart_drops_connections_refuses_while_down_and_comes_back(
    sim: Simulator, http: httpx.AsyncClient
) -> None:
    sim.preload(QWEN, ttl_s=60)
    gate = sim.faults.hold_route("/api/v1/models")
    outcome: list[str] = []

    async def held_request() -> None:
        try:
            await http.get(f"{sim.base_url}/api/v1/models")
            outcome.append("answered")
        except httpx.TransportError as exc:
            outcome.append(type(exc).__name__)

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(held_request)
            await sim.wait_for(lambda: sim.count("/api/v1/models") == 1)
            await sim.stop()
        assert not sim.is_up
        with pytest.raises(httpx.ConnectError):
            await http.get(f"{sim.base_url}/lmstudio-greeting")
        await sim.start()
        gate.set()
        greeting = await http.get(f"{sim.base_url}/lmstudio-greeting")
    assert len(outcome) == 1
    assert outcome[0] != "answered"  # dropped, never answered
    assert greeting.json() == {"lmstudio": True}
    assert sim.loaded() == []  # an app restart forgets what was loaded
    assert sim.state.evictions == [QWEN]
    assert sim.restarts == [False]


async def test_a_server_only_restart_keeps_the_loaded_models(
    sim: Simulator, http: httpx.AsyncClient
) -> None:
    sim.preload(QWEN, ttl_s=60)
    with trio.fail_after(10):
        await sim.restart(keep_loaded=True)
        models = (await http.get(f"{sim.openai_url}/models")).json()["data"]
    assert QWEN in [m["id"] for m in models]
    assert sim.loaded() == [QWEN]


async def test_hung_lms_runs_are_released_and_faults_cleared(sim: Simulator) -> None:
    sim.faults.cli_hang.add("ps")
    sim.faults.load_errors[QWEN] = "nope"
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            results: list[int] = []

            async def hung_ps() -> None:
                results.append((await lms(sim, "ps", "--json"))[0])

            nursery.start_soon(hung_ps)
            await sim.wait_for(lambda: len(sim.cli_runs("ps")) == 1)
            sim.faults.clear()
        assert results == [1]  # the hung run answered with an error once released
        assert (await lms(sim, "ps", "--json"))[0] == 0  # and runs no longer hang
        assert (await lms(sim, "load", QWEN, "-y", "--ttl", "5"))[0] == 0
