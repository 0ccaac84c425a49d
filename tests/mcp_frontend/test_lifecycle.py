"""Lifecycle tools through the in-memory MCP client, against FakeBackend."""

from __future__ import annotations

import re

import pytest
import trio
from mcp import Client

from mcp_frontend.server import build_server
from mcp_frontend.settings import FrontendSettings
from orchestrator import (
    BackendUnreachable,
    LoadFailed,
    ModelInfo,
)
from tests.mcp_frontend.mcp_support import FAST, Fake, error, ok


async def test_list_models_shows_catalogue_loaded_instances_and_our_states(fake: Fake) -> None:
    fake.backend.catalog["emb"] = ModelInfo(
        key="emb", type="embedding", size_bytes=1234, max_context_length=2048,
        capabilities=("x",), architecture="nomic-bert", quantization="F16", params="137M",
    )  # fmt: skip
    fake.backend.catalog["model-a"] = ModelInfo(key="model-a", size_bytes=5000)
    fake.backend.preload("stranger")  # loaded by someone else, not in the catalogue
    await fake.orch.ensure_loaded("model-a")

    out = ok(await fake.client.call_tool("list_models", {"refresh": True}))

    by_key = {m["key"]: m for m in out["models"]}
    assert out["backend"] == "fake"
    assert out["loaded_error"] is None
    assert out["catalog_problem"] is None
    assert by_key["model-a"]["state"] == "READY"
    assert by_key["model-a"]["loaded_identifiers"] == ["model-a"]
    assert by_key["model-a"]["loaded_instances"] == [
        {"identifier": "model-a", "context_length": None, "device": None}
    ]
    assert by_key["model-b"]["state"] is None  # never used by this server
    assert by_key["emb"] == {
        "key": "emb",
        "type": "embedding",
        "size_bytes": 1234,
        "max_context_length": 2048,
        "capabilities": ["x"],
        "downloaded": True,
        "loaded": False,
        "architecture": "nomic-bert",
        "quantization": "F16",
        "params": "137M",
        "loaded_identifiers": [],
        "loaded_instances": [],
        "state": None,
        "unusable": None,
    }
    assert (by_key["model-a"]["downloaded"], by_key["model-a"]["loaded"]) == (True, True)
    assert (by_key["stranger"]["downloaded"], by_key["stranger"]["loaded"]) == (False, True)
    assert out["totals"] == {
        "models": 4,
        "loaded_models": 2,
        "disk_bytes": 5000 + 1234,  # model-b's size is unknown
        "loaded_bytes": 5000,  # the stranger's size is unknown
    }
    only = ok(await fake.client.call_tool("list_models", {"kind": "embedding"}))
    assert [m["key"] for m in only["models"]] == ["emb"]
    found = ok(await fake.client.call_tool("list_models", {"key_contains": "MODEL-"}))
    assert sorted(m["key"] for m in found["models"]) == ["model-a", "model-b"]
    assert found["totals"]["models"] == 2


async def test_list_models_still_shows_the_catalogue_when_the_loaded_list_fails(fake: Fake) -> None:
    await fake.orch.catalog()  # cached
    fake.backend.unreachable = True

    out = ok(await fake.client.call_tool("list_models", {}))

    assert [m["key"] for m in out["models"]] == ["model-a", "model-b"]
    assert "unreachable" in out["loaded_error"]


async def test_load_model_loads_and_reports_status_and_wait(fake: Fake) -> None:
    out = ok(await fake.client.call_tool("load_model", {"model": "model-a", "ttl_s": 120}))

    assert out["status"]["state"] == "READY"
    assert out["status"]["ttl_s"] == 120
    assert out["was_ready"] is False
    assert out["waited_s"] >= 0
    again = ok(await fake.client.call_tool("load_model", {"model": "model-a"}))
    assert again["was_ready"] is True
    assert fake.backend.count("load", "model-a") == 1


@pytest.mark.parametrize(
    ("keep_loaded", "ttl"), [(True, FAST.max_ttl_s), (False, FAST.temporary_ttl_s)]
)
async def test_keep_loaded_chooses_the_longest_or_the_temporary_ttl(
    fake: Fake, keep_loaded: bool, ttl: float
) -> None:
    out = ok(
        await fake.client.call_tool("load_model", {"model": "model-a", "keep_loaded": keep_loaded})
    )

    assert out["status"]["ttl_s"] == ttl
    assert [c.ttl_s for c in fake.backend.calls if c.method == "load"] == [ttl]


async def test_ttl_and_keep_loaded_together_are_refused_before_any_load(fake: Fake) -> None:
    msg = error(
        await fake.client.call_tool(
            "load_model", {"model": "model-a", "ttl_s": 5, "keep_loaded": True}
        )
    )

    assert "ttl_s or keep_loaded, not both" in msg
    assert fake.backend.count("load") == 0


async def test_loading_an_unknown_model_lists_the_available_ones(fake: Fake) -> None:
    msg = error(await fake.client.call_tool("load_model", {"model": "nope"}))

    assert "unknown model 'nope'" in msg
    assert "model-a, model-b" in msg
    assert "list_models" in msg
    assert "Traceback" not in msg
    assert fake.backend.count("load") == 0


async def test_an_invalid_model_name_is_refused_before_the_backend(fake: Fake) -> None:
    msg = error(await fake.client.call_tool("load_model", {"model": "--help"}))

    assert "invalid model name" in msg
    assert fake.backend.count("load") == 0
    assert all(c.model != "--help" for c in fake.backend.calls)


async def test_an_open_breaker_says_when_to_retry_and_reset_breaker_closes_it(fake: Fake) -> None:
    fake.backend.script("model-a").fail_always = True
    fake.backend.script("model-a").error = lambda: LoadFailed("model-a", "out of memory (scripted)")
    for _ in range(FAST.breaker_threshold):
        error(await fake.client.call_tool("load_model", {"model": "model-a"}))
    loads = fake.backend.count("load")

    msg = error(await fake.client.call_tool("load_model", {"model": "model-a"}))

    assert "circuit breaker open" in msg
    assert re.search(r"retry in (600|599)\.\ds", msg)
    assert "reset_breaker" in msg
    assert fake.backend.count("load") == loads  # failed fast, the fake.backend was not touched
    status = ok(await fake.client.call_tool("model_status", {"model": "model-a"}))["models"][0]
    assert status["state"] == "BREAKER_OPEN"
    assert status["retry_after_s"] > 590
    assert status["consecutive_failures"] == FAST.breaker_threshold
    assert "out of memory" in status["last_error"]

    fake.backend.script("model-a").fail_always = False
    reset = ok(await fake.client.call_tool("reset_breaker", {"model": "model-a"}))
    assert reset["state"] == "UNLOADED"
    assert reset["consecutive_failures"] == 0
    assert (
        ok(await fake.client.call_tool("load_model", {"model": "model-a"}))["status"]["state"]
        == "READY"
    )


async def test_model_status_lists_managed_models_and_one_never_used(fake: Fake) -> None:
    await fake.orch.ensure_loaded("model-a", ttl_s=60)

    every = ok(await fake.client.call_tool("model_status", {}))["models"]
    fresh = ok(await fake.client.call_tool("model_status", {"model": "model-b"}))["models"]

    assert [(s["model"], s["state"], s["ttl_s"], s["in_flight"]) for s in every] == [
        ("model-a", "READY", 60, 0)
    ]
    assert 0 < every[0]["expires_in_s"] <= 60
    assert fresh[0]["state"] == "UNLOADED"
    assert fresh[0]["ttl_s"] == FAST.default_ttl_s
    msg = error(await fake.client.call_tool("model_status", {"model": "nope"}))
    assert "available models: model-a, model-b" in msg


async def test_unload_model_unloads_and_is_refused_while_in_use(fake: Fake) -> None:
    await fake.orch.ensure_loaded("model-a")
    async with fake.orch.lease("model-a"):
        busy = error(await fake.client.call_tool("unload_model", {"model": "model-a"}))
        assert "model 'model-a' has 1 request(s) in flight" in busy
        assert "retry when it is idle" in busy
        assert "model-a" in fake.backend.loaded

    out = ok(await fake.client.call_tool("unload_model", {"model": "model-a"}))

    assert out["state"] == "UNLOADED"
    assert "model-a" not in fake.backend.loaded
    assert fake.backend.count("unload", "model-a") == 1


async def test_health_check_reports_reachability_versions_and_counts(fake: Fake) -> None:
    await fake.orch.ensure_loaded("model-a")

    up = ok(await fake.client.call_tool("health_check", {}))
    fake.backend.unreachable = True
    down = ok(await fake.client.call_tool("health_check", {}))

    assert up["reachable"] is True
    assert up["backend"] == "fake"
    assert up["backend_version"] == "0"
    assert up["mcp_version"].startswith("2.")
    assert up["models_managed"] == 1
    assert up["models_ready"] == 1
    assert up["uptime_s"] >= 0
    assert down["reachable"] is False


async def test_load_model_reports_each_state_change_as_progress(fake: Fake) -> None:
    gate = fake.backend.script("model-a").gate = trio.Event()
    seen: list[str] = []
    loading = trio.Event()

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append(message or "")
        if message and message.endswith("LOADING"):
            loading.set()

    async def release_when_loading() -> None:
        await loading.wait()
        gate.set()

    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(release_when_loading)
            result = await fake.client.call_tool(
                "load_model", {"model": "model-a"}, progress_callback=on_progress
            )

    assert ok(result)["status"]["state"] == "READY"
    assert seen[0] == "model-a: LOADING"
    assert seen[-1] == "model-a: READY"


async def test_a_failing_load_reports_the_backend_error_without_a_traceback(fake: Fake) -> None:
    fake.backend.script("model-a").fail_always = True
    fake.backend.script("model-a").error = lambda: BackendUnreachable(
        "connection refused (scripted)"
    )

    msg = error(await fake.client.call_tool("load_model", {"model": "model-a"}))

    assert "connection refused" in msg
    assert "Traceback" not in msg


async def test_a_server_built_without_settings_reads_them_from_the_environment(
    fake: Fake, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LMSORCH_MCP_MAX_PROMPT_CHARS", "10")

    async with Client(build_server(fake.orch)) as c:
        msg = error(await c.call_tool("chat_completion", {"prompt": "x" * 11, "model": "model-a"}))

    assert "limit is 10" in msg
    assert fake.backend.count("load") == 0
    assert FrontendSettings.from_env().max_prompt_chars == 10
