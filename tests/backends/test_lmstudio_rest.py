"""LMStudioBackend over REST against the simulator: versions, listings, unload, health, faults."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from orchestrator.backends import Backend, LoadedModel
from orchestrator.backends.http_errors import EndpointNotSupported
from orchestrator.backends.lmstudio import ApiLevel, LMStudioBackend
from orchestrator.config import LMStudioSettings
from orchestrator.errors import (
    BackendAuthError,
    BackendProtocolError,
    BackendRejected,
    BackendServerError,
    BackendTimeout,
    BackendUnreachable,
    ConfigError,
)
from tests.fakes import SimModel, Simulator, open_simulator
from tests.fakes.fixtures import free_port, make_backend, remove_lms

QWEN = "qwen/qwen3-4b"
EMBED = "text-embedding-nomic-embed-text-v1.5"


@pytest.fixture(autouse=True)
def _no_lms(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    remove_lms(monkeypatch, tmp_path)


async def test_it_is_a_backend_and_points_inference_at_v1(sim: Simulator) -> None:
    backend = make_backend(sim)
    assert isinstance(backend, Backend)
    assert backend.name == "lmstudio"
    assert backend.base_url(QWEN) == f"{sim.base_url}/v1"
    assert backend.http_headers() == {}
    await backend.aclose()


def test_base_url_is_normalized_and_validated() -> None:
    backend = LMStudioBackend(LMStudioSettings(base_url="http://127.0.0.1:1234/v1/"))
    assert backend.root_url == "http://127.0.0.1:1234"
    assert backend.base_url("m") == "http://127.0.0.1:1234/v1"
    with pytest.raises(ConfigError, match="http"):
        LMStudioBackend(LMStudioSettings(base_url="127.0.0.1:1234"))


@pytest.mark.parametrize(
    ("api", "level"),
    [("v1", ApiLevel.REST_V1), ("v0", ApiLevel.REST_V0), ("openai", ApiLevel.OPENAI_ONLY)],
)
async def test_api_level_is_detected_once_and_cached(api: str, level: ApiLevel) -> None:
    async with open_simulator(api=api) as sim:  # type: ignore[arg-type]
        backend = make_backend(sim)
        assert await backend.api_level() is level
        probes = len(sim.calls)
        async with trio.open_nursery() as nursery:
            for _ in range(5):
                nursery.start_soon(backend.api_level)
        assert len(sim.calls) == probes
        await backend.aclose()


@pytest.mark.parametrize("api", ["v1", "v0", "openai"])
async def test_catalogue_on_every_version(api: str) -> None:
    async with open_simulator(api=api) as sim:  # type: ignore[arg-type]
        backend = make_backend(sim)
        models = {m.key: m for m in await backend.list_available()}
        assert set(models) == set(sim.state.catalog)
        if api != "openai":  # /v1/models carries ids only
            assert models[EMBED].type == "embedding"
            assert models["google/gemma-3-4b"].type == "vlm"
            assert models[QWEN].max_context_length == 32768
            assert "tool_use" in models[QWEN].capabilities
        if api == "v1":
            assert models[QWEN].size_bytes == sim.state.catalog[QWEN].size_bytes
            assert "reasoning" in models["openai/gpt-oss-20b"].capabilities
        await backend.aclose()


@pytest.mark.parametrize("api", ["v1", "v0"])
async def test_loaded_list_on_rest_versions(api: str) -> None:
    async with open_simulator(api=api) as sim:  # type: ignore[arg-type]
        sim.preload(QWEN)
        sim.preload(EMBED)
        backend = make_backend(sim)
        loaded = await backend.list_loaded()
        assert sorted(loaded, key=lambda m: m.identifier) == [
            LoadedModel(identifier=QWEN, key=QWEN, context_length=4096),
            LoadedModel(identifier=EMBED, key=EMBED, context_length=2048),
        ]
        await backend.aclose()


async def test_v1_lists_every_instance_with_its_identifier(sim: Simulator) -> None:
    sim.preload(QWEN)
    sim.preload(QWEN)  # a second instance: "qwen/qwen3-4b:2"
    sim.preload(QWEN, identifier="mine")
    backend = make_backend(sim)
    ids = {m.identifier: m.key for m in await backend.list_loaded()}
    assert ids == {QWEN: QWEN, f"{QWEN}:2": QWEN, "mine": QWEN}
    await backend.aclose()


async def test_openai_only_server_without_lms_cannot_list_loaded(sim: Simulator) -> None:
    sim.api = "openai"
    backend = make_backend(sim)
    with pytest.raises(BackendRejected, match="install the `lms` CLI"):
        await backend.list_loaded()
    await backend.aclose()


async def test_unload_through_rest_v1_and_absent_is_fine(sim: Simulator) -> None:
    sim.preload(QWEN)
    backend = make_backend(sim)
    await backend.unload(QWEN)
    assert sim.loaded() == []
    assert sim.state.unloads == [QWEN]
    await backend.unload(QWEN)  # LM Studio says 404 model_not_found; for us that is done
    assert sim.count("/api/v1/models/unload") == 2
    await backend.aclose()


async def test_unload_on_v0_without_lms_explains_what_to_install(sim: Simulator) -> None:
    sim.api = "v0"
    backend = make_backend(sim)
    await backend.unload(QWEN)  # not loaded: nothing to do
    sim.preload(QWEN)
    with pytest.raises(BackendRejected, match="install the `lms` CLI") as info:
        await backend.unload(QWEN)
    assert "TTL" in str(info.value)
    await backend.aclose()


async def test_health_reports_without_raising(sim: Simulator) -> None:
    backend = make_backend(sim)
    health = await backend.health()
    assert health.reachable
    assert health.backend == "lmstudio"
    assert "rest-v1" in health.detail
    assert "lms CLI not found" in health.detail
    sim.faults.route_raw["/lmstudio-greeting"] = (200, "application/json", b'{"status":"ok"}')
    impostor = await backend.health()
    assert not impostor.reachable
    assert "not as LM Studio" in impostor.detail
    await backend.aclose()
    nobody = LMStudioBackend(LMStudioSettings(base_url=f"http://127.0.0.1:{free_port()}"))
    down = await nobody.health()
    assert not down.reachable
    assert "cannot connect" in down.detail
    await nobody.aclose()


async def test_connection_refused_is_unreachable() -> None:
    backend = LMStudioBackend(LMStudioSettings(base_url=f"http://127.0.0.1:{free_port()}"))
    with pytest.raises(BackendUnreachable, match="cannot connect"):
        await backend.list_available()
    await backend.aclose()


# -- auth --


async def test_token_is_sent_and_never_shown() -> None:
    token = "sk-lm-abcd1234:ABCDEFGHIJKLMNOPQRST"
    async with open_simulator(api_token=token) as sim:
        backend = make_backend(sim, api_token=token)
        assert backend.http_headers() == {"Authorization": f"Bearer {token}"}
        assert [m.key for m in await backend.list_available()]
        assert {c.authorization for c in sim.requests("/api/v1/models")} == {f"Bearer {token}"}
        assert token not in repr(backend)
        assert "api_token=<set>" in repr(backend)
        await backend.aclose()


async def test_missing_or_wrong_token_is_a_clear_auth_error() -> None:
    async with open_simulator(api_token="sk-lm-right:token") as sim:
        anonymous = make_backend(sim)
        with pytest.raises(BackendAuthError, match="requires an API token") as missing:
            await anonymous.list_available()
        assert "LMSTUDIO_API_TOKEN" in str(missing.value)
        health = await anonymous.health()
        assert health.reachable  # the greeting answers; the API refuses
        assert "API token" in health.detail
        wrong = make_backend(sim, api_token="sk-lm-wrong:token")
        with pytest.raises(BackendAuthError, match="rejected the API token") as bad:
            await wrong.list_loaded()
        assert "sk-lm-wrong" not in str(bad.value)
        await anonymous.aclose()
        await wrong.aclose()


# -- route faults --


async def test_5xx_is_a_transient_server_error(sim: Simulator) -> None:
    sim.faults.route_status["/api/v1/models"] = 500
    backend = make_backend(sim)
    with pytest.raises(BackendServerError, match="HTTP 500") as info:
        await backend.api_level()
    assert info.value.transient
    del sim.faults.route_status["/api/v1/models"]
    assert await backend.api_level() is ApiLevel.REST_V1  # not cached after a failure
    await backend.aclose()


async def test_200_with_error_body_is_not_success(sim: Simulator) -> None:
    backend = make_backend(sim)
    await backend.api_level()
    sim.faults.route_error_200["/api/v1/models"] = "Something went wrong in the model registry"
    with pytest.raises(BackendRejected, match="model registry") as info:
        await backend.list_available()
    assert not info.value.transient
    await backend.aclose()


@pytest.mark.parametrize(
    ("content_type", "body", "match"),
    [
        ("application/json", b'{"models": [{"key": ', "non-JSON"),
        ("text/html", b"<html><body><h1>502 Bad Gateway</h1></body></html>", "HTML"),
        ("application/json", b'{"models": [{"key": 42}]}', "unexpected answer shape"),
        ("application/json", b'{"models": "none"}', "unexpected answer shape"),
        ("application/json", b'["not", "an", "object"]', "unexpected answer shape"),
    ],
)
async def test_malformed_answers_are_bounded_protocol_errors(
    sim: Simulator, content_type: str, body: bytes, match: str
) -> None:
    backend = make_backend(sim)
    await backend.api_level()
    sim.faults.route_raw["/api/v1/models"] = (200, content_type, body)
    with pytest.raises(BackendProtocolError, match=match) as info:
        await backend.list_available()
    assert len(str(info.value)) < 600
    await backend.aclose()


async def test_a_huge_body_is_refused_without_reading_it_all(sim: Simulator) -> None:
    backend = make_backend(sim)
    await backend.api_level()
    huge = b'{"models": [' + b'{"key": "m"},' * 1_000_000 + b'{"key": "z"}]}'
    sim.faults.route_raw["/api/v1/models"] = (200, "application/json", huge)
    with pytest.raises(BackendProtocolError, match="larger than 8388608 bytes"):
        await backend.list_available()
    await backend.aclose()


async def test_a_hung_route_times_out(sim: Simulator) -> None:
    backend = make_backend(sim, http_timeout_s=0.2)
    await backend.api_level()
    gate = sim.faults.hold_route("/api/v1/models")
    with pytest.raises(BackendTimeout, match="no answer in time") as info:
        await backend.list_loaded()
    assert info.value.transient
    gate.set()
    assert await backend.list_loaded() == []
    await backend.aclose()


async def test_version_change_behind_our_back_is_probed_again(sim: Simulator) -> None:
    backend = make_backend(sim)
    assert await backend.api_level() is ApiLevel.REST_V1
    sim.api = "v0"  # LM Studio was replaced by an older one
    with pytest.raises(EndpointNotSupported):
        await backend.list_loaded()
    assert await backend.api_level() is ApiLevel.REST_V0
    sim.preload(QWEN)
    assert [m.identifier for m in await backend.list_loaded()] == [QWEN]
    await backend.aclose()


async def test_string_error_style_is_understood() -> None:
    models = (SimModel(key=QWEN),)
    async with open_simulator(models, error_style="string") as sim:
        backend = make_backend(sim)
        sim.preload(QWEN)
        await backend.unload("not-there")  # 404 {"error": "..."}: still "absent"
        assert sim.loaded() == [QWEN]
        await backend.aclose()


# httpcore leaves its inner body generator to the GC when a body is abandoned
# half-read; trio then warns (a ResourceWarning, ignored outside tests).
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
async def test_a_huge_chunked_body_is_cut_off_at_the_limit(sim: Simulator) -> None:
    backend = make_backend(sim)
    await backend.api_level()
    sim.faults.route_chunked["/api/v1/models"] = (b" " * 65536, 200)  # 13 MB, no length
    with pytest.raises(BackendProtocolError, match="larger than 8388608 bytes"):
        await backend.list_available()
    await backend.aclose()
