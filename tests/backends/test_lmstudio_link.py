"""LM Studio 0.4 facts the listings carry (findings F5, F9): real context, LM Link devices."""

from __future__ import annotations

import json

import pytest
from structlog.testing import capture_logs

from orchestrator.backends import LoadedModel
from orchestrator.errors import BackendRejected
from tests.fakes import DEFAULT_MODELS, SimModel, Simulator, open_simulator
from tests.fakes.fixtures import make_backend

QWEN = "qwen/qwen3-4b"
REMOTE = "qwen/qwen3-32b"


def _ps(identifier: str, device: str | None) -> dict[str, object]:
    return {"identifier": identifier, "modelKey": QWEN, "deviceIdentifier": device}


async def test_loaded_context_is_read_back_and_a_silent_fit_is_reported(lms: str) -> None:
    """F5: LM Studio 0.4.12+ may load less context than asked, without an error."""
    models = (SimModel(key=QWEN, fit_context=4096), *DEFAULT_MODELS[1:])
    async with open_simulator(models) as sim:
        backend = make_backend(sim, lms_cli=lms)
        with capture_logs() as logs:
            await backend.load(QWEN, identifier=QWEN, ttl_s=60, context_length=16384)
        (loaded,) = await backend.list_loaded()
        assert loaded.context_length == 4096
        (fitted,) = [e for e in logs if e["event"] == "lmstudio_context_fitted_down"]
        assert (fitted["asked"], fitted["loaded"]) == (16384, 4096)
        await backend.aclose()


async def test_a_model_on_another_lm_link_device_is_shown_and_not_counted(lms: str) -> None:
    """F9: deviceIdentifier is kept; a remote file takes no local memory."""
    models = (*DEFAULT_MODELS, SimModel(key=REMOTE, device="mac-studio"))
    async with open_simulator(models) as sim:
        backend = make_backend(sim, lms_cli=lms, prefer_cli=True)
        catalog = {m.key: m for m in await backend.list_available()}
        assert catalog[REMOTE].size_bytes is None
        assert catalog[QWEN].size_bytes == sim.state.catalog[QWEN].size_bytes
        await backend.load(REMOTE, identifier=REMOTE, ttl_s=60)
        (loaded,) = await backend.list_loaded()
        assert (loaded.identifier, loaded.device) == (REMOTE, "mac-studio")
        await backend.aclose()


async def test_a_key_on_two_devices_is_one_catalogue_entry_the_local_one(
    sim: Simulator, lms: str
) -> None:
    entry = {"modelKey": QWEN, "type": "llm", "sizeBytes": 5}
    listing = [{**entry, "deviceIdentifier": "mac-studio"}, {**entry, "deviceIdentifier": None}]
    sim.faults.cli_stdout["ls"] = json.dumps(listing)
    backend = make_backend(sim, lms_cli=lms, prefer_cli=True)
    (only,) = await backend.list_available()
    assert (only.key, only.size_bytes) == (QWEN, 5)
    await backend.aclose()


async def test_unload_never_opens_lms_s_device_picker(sim: Simulator, lms: str) -> None:
    """F9: lms unload ID with ID on two devices asks interactively (unload.ts)."""
    sim.faults.cli_stdout["ps"] = json.dumps([_ps("dup", None), _ps("dup", "mac-studio")])
    backend = make_backend(sim, lms_cli=lms, prefer_cli=True)
    with pytest.raises(BackendRejected, match="several LM Link devices"):
        await backend.unload("dup")
    assert sim.cli_runs("unload") == []
    sim.faults.cli_stdout["ps"] = json.dumps([_ps("one", "mac-studio")])
    assert await backend.list_loaded() == [
        LoadedModel(identifier="one", key=QWEN, device="mac-studio")
    ]
    await backend.aclose()
