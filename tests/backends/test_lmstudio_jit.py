"""Loads without ``lms``: a JIT load carrying ``ttl``, its limits, and the opt-in REST v1 load."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.backends.lmstudio import INSTALL_HINT
from orchestrator.errors import (
    BackendRejected,
    BackendServerError,
    BackendTimeout,
    UnknownModel,
)
from tests.fakes import GUARDRAIL_MESSAGE, Simulator, open_simulator
from tests.fakes.fixtures import make_backend, remove_lms

QWEN = "qwen/qwen3-4b"
GEMMA = "google/gemma-3-4b"
EMBED = "text-embedding-nomic-embed-text-v1.5"


@pytest.fixture(autouse=True)
def _no_lms(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    remove_lms(monkeypatch, tmp_path)


@pytest.mark.parametrize("api", ["v1", "v0"])
async def test_jit_load_carries_the_ttl(api: str) -> None:
    async with open_simulator(api=api) as sim:  # type: ignore[arg-type]
        backend = make_backend(sim)
        await backend.load(QWEN, identifier=QWEN, ttl_s=300)
        (record,) = sim.state.loads
        assert (record.identifier, record.ttl_s, record.via) == (QWEN, 300.0, "jit")
        (call,) = sim.requests("/v1/chat/completions")
        assert call.body["ttl"] == 300
        assert call.body["max_tokens"] == 1
        assert [m.identifier for m in await backend.list_loaded()] == [QWEN]
        await backend.aclose()


async def test_jit_load_of_an_embedding_model_uses_embeddings(sim: Simulator) -> None:
    backend = make_backend(sim)
    await backend.load(EMBED, identifier=EMBED, ttl_s=60)
    assert sim.count("/v1/chat/completions") == 0
    (call,) = sim.requests("/v1/embeddings")
    assert call.body["ttl"] == 60
    assert sim.loaded() == [EMBED]
    await backend.aclose()


async def test_the_ttl_is_enforced_by_the_server(sim: Simulator) -> None:
    backend = make_backend(sim)
    await backend.load(QWEN, identifier=QWEN, ttl_s=300)
    assert sim.state.advance(299) == []
    assert sim.state.advance(1) == [QWEN]  # freed even if this process had died
    assert await backend.list_loaded() == []
    await backend.aclose()


async def test_auto_evict_unloads_the_previous_jit_model(sim: Simulator) -> None:
    """The trade-off recorded in docs/decisions/0002: one JIT model at a time by default."""
    backend = make_backend(sim)
    await backend.load(QWEN, identifier=QWEN, ttl_s=300)
    await backend.load(GEMMA, identifier=GEMMA, ttl_s=300)
    assert sim.loaded() == [GEMMA]
    assert sim.state.evictions == [QWEN]
    await backend.aclose()


async def test_jit_cannot_choose_the_identifier(sim: Simulator) -> None:
    backend = make_backend(sim)
    with pytest.raises(BackendRejected, match="names a JIT-loaded instance after its model key"):
        await backend.load(QWEN, identifier="my-qwen", ttl_s=60)
    assert sim.state.loads == []
    await backend.aclose()


async def test_context_length_is_ignored_by_a_jit_load(sim: Simulator) -> None:
    backend = make_backend(sim)
    await backend.load(QWEN, identifier=QWEN, ttl_s=60, context_length=16384)
    assert sim.state.loads[0].context_length is None
    await backend.aclose()


async def test_jit_off_gives_one_clear_error() -> None:
    async with open_simulator(jit=False) as sim:
        backend = make_backend(sim)
        with pytest.raises(BackendRejected, match="Just-in-Time") as info:
            await backend.load(QWEN, identifier=QWEN, ttl_s=60)
        assert INSTALL_HINT in str(info.value)
        await backend.aclose()


async def test_old_server_without_lms_gives_one_clear_error() -> None:
    async with open_simulator(api="openai") as sim:
        backend = make_backend(sim)
        with pytest.raises(BackendRejected, match="install the `lms` CLI") as info:
            await backend.load(QWEN, identifier=QWEN, ttl_s=60)
        assert "too old" in str(info.value)
        assert "LMS_CLI" in str(info.value)
        assert sim.state.loads == []
        await backend.aclose()


async def test_unknown_model_lists_the_available_ones(sim: Simulator) -> None:
    backend = make_backend(sim)
    with pytest.raises(UnknownModel) as info:
        await backend.load("nope/nothing", identifier="nope/nothing", ttl_s=60)
    assert info.value.available == sorted(sim.state.catalog)
    assert "qwen/qwen3-4b" in str(info.value)
    await backend.aclose()


async def test_jit_guardrail_and_engine_failures(sim: Simulator) -> None:
    backend = make_backend(sim)
    sim.faults.load_errors[QWEN] = GUARDRAIL_MESSAGE
    with pytest.raises(BackendRejected, match="insufficient system resources"):
        await backend.load(QWEN, identifier=QWEN, ttl_s=60)
    sim.faults.load_errors[QWEN] = "Failed to load model: engine crashed"
    sim.faults.load_error_status = 500
    with pytest.raises(BackendServerError, match="engine crashed") as info:
        await backend.load(QWEN, identifier=QWEN, ttl_s=60)
    assert info.value.transient
    await backend.aclose()


async def test_slow_jit_load_times_out_at_the_load_deadline(sim: Simulator) -> None:
    sim.faults.hold_load(QWEN)
    backend = make_backend(sim, load_timeout_s=0.3)
    with pytest.raises(BackendTimeout):
        await backend.load(QWEN, identifier=QWEN, ttl_s=60)
    await backend.aclose()


# -- the opt-in REST v1 load (no backend-side TTL) --


async def test_untimed_rest_load_when_explicitly_allowed(sim: Simulator) -> None:
    backend = make_backend(sim, allow_untimed_rest_load=True)
    await backend.load(QWEN, identifier=QWEN, ttl_s=60, context_length=8192)
    (call,) = sim.requests("/api/v1/models/load")
    assert call.body == {"model": QWEN, "context_length": 8192}
    (record,) = sim.state.loads
    assert (record.via, record.ttl_s, record.context_length) == ("rest", None, 8192)
    await backend.aclose()


async def test_untimed_rest_load_that_picks_another_identifier_is_undone(sim: Simulator) -> None:
    sim.preload(QWEN, identifier=QWEN)  # the core would adopt it; here we force a second load
    backend = make_backend(sim, allow_untimed_rest_load=True)
    with pytest.raises(BackendRejected, match="qwen/qwen3-4b:2"):
        await backend.load(QWEN, identifier=QWEN, ttl_s=60)
    assert sim.loaded() == [QWEN]  # the stray ":2" instance was unloaded again
    await backend.aclose()


async def test_untimed_rest_load_of_a_key_lm_studio_no_longer_has(sim: Simulator) -> None:
    backend = make_backend(sim, allow_untimed_rest_load=True)
    gone = b'{"error": {"message": "Model not found: qwen/qwen3-4b", "code": "model_not_found"}}'
    sim.faults.route_raw["/api/v1/models/load"] = (404, "application/json", gone)
    with pytest.raises(UnknownModel) as info:
        await backend.load(QWEN, identifier=QWEN, ttl_s=60)
    assert EMBED in info.value.available
    await backend.aclose()
