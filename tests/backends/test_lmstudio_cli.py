"""LMStudioBackend through the fake ``lms``, which shares the simulator's state."""

from __future__ import annotations

import os
from functools import partial
from pathlib import Path

import pytest
import trio
import trio.testing

from orchestrator.backends import LoadedModel
from orchestrator.backends.lmstudio_cli import LmsCli
from orchestrator.errors import (
    BackendProtocolError,
    BackendRejected,
    BackendTimeout,
    BackendUnreachable,
    ConfigError,
    InvalidModelName,
    InvalidRequest,
    ModelNotLoaded,
    UnknownModel,
)
from tests.fakes import GUARDRAIL_MESSAGE, Simulator, open_simulator
from tests.fakes.fixtures import install_fake_lms, make_backend, remove_lms
from tests.fakes.sim_cli import NOT_FOUND_BLOCK

LOCAL_UNREACHABLE = "Error: Failed to start or connect to local LM Studio API server.\n"

QWEN = "qwen/qwen3-4b"
EMBED = "text-embedding-nomic-embed-text-v1.5"


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_load_goes_through_lms_with_identifier_and_ttl(sim: Simulator, lms: str) -> None:
    backend = make_backend(sim)  # lms found on PATH
    await backend.load(QWEN, identifier=QWEN, ttl_s=600, context_length=8192)
    (run,) = sim.cli_runs("load")
    port = sim.base_url.rpartition(":")[2]
    assert run.argv == (
        "load",
        QWEN,
        "--identifier",
        QWEN,
        "--ttl",
        "600",
        "-y",
        "-c",
        "8192",
        "--port",  # no --host: that would make lms an unprivileged remote client (F2)
        port,
    )
    (record,) = sim.state.loads
    assert (record.key, record.identifier, record.ttl_s, record.via) == (QWEN, QWEN, 600.0, "cli")
    assert record.context_length == 8192
    assert sim.count("/api/v1/models/load") == 0  # REST v1 load cannot carry a TTL
    assert await backend.list_loaded() == [
        LoadedModel(identifier=QWEN, key=QWEN, context_length=8192)
    ]
    await backend.aclose()


async def test_ttl_is_whole_seconds_at_least_one(sim: Simulator, lms: str) -> None:
    backend = make_backend(sim, lms_cli=lms)
    await backend.load(QWEN, identifier="a", ttl_s=0.2)
    await backend.load(QWEN, identifier="b", ttl_s=90.5)
    assert [r.ttl_s for r in sim.state.loads] == [1.0, 91.0]
    for bad in (0, -5, float("inf"), float("nan")):
        with pytest.raises(InvalidRequest, match="ttl_s"):
            await backend.load(QWEN, identifier="c", ttl_s=bad)
    with pytest.raises(InvalidRequest, match="context_length"):
        await backend.load(QWEN, identifier="c", ttl_s=10, context_length=0)
    await backend.aclose()


async def test_names_are_validated_before_lms_runs(sim: Simulator, lms: str) -> None:
    backend = make_backend(sim, lms_cli=lms)
    for bad in ("--help", "a b", "../etc", ""):
        with pytest.raises(InvalidModelName):
            await backend.load(bad, identifier="x", ttl_s=10)
        with pytest.raises(InvalidModelName):
            await backend.unload(bad)
    with pytest.raises(InvalidModelName):
        await backend.load(QWEN, identifier="-y", ttl_s=10)
    assert sim.cli_calls == []
    await backend.aclose()


async def test_unknown_key_never_reaches_fuzzy_matching_lms(sim: Simulator, lms: str) -> None:
    backend = make_backend(sim, lms_cli=lms)
    with pytest.raises(UnknownModel) as info:
        await backend.load("qwen", identifier="qwen", ttl_s=60)  # lms -y would load qwen/qwen3-4b
    assert QWEN in info.value.available
    assert sim.cli_runs("load") == []
    assert sim.loaded() == []
    await backend.aclose()


async def test_a_variant_is_refused_up_front_naming_the_base_key(sim: Simulator, lms: str) -> None:
    """F4: lms load matches base keys only; the variant would fail as "not found"."""
    backend = make_backend(sim, lms_cli=lms)
    with pytest.raises(InvalidRequest, match=f"load '{QWEN}' instead"):
        await backend.load(f"{QWEN}@q4_k_m", identifier="q4", ttl_s=60)
    assert sim.cli_runs("load") == []
    await backend.aclose()


async def test_the_fake_lms_does_not_resolve_variants_either(sim: Simulator, lms: str) -> None:
    """The simulator says what lms load.ts says: a variant matches no key."""
    cli = LmsCli(lms, ["--port", sim.base_url.rpartition(":")[2]])
    with pytest.raises(ModelNotLoaded, match="No model found that matches model key"):
        await cli.load(
            f"{QWEN}@q4_k_m", identifier="q4", ttl_s=60, context_length=None, timeout_s=10
        )
    assert sim.loaded() == []


async def test_guardrail_refusal_is_permanent_and_keeps_the_message(
    sim: Simulator, lms: str
) -> None:
    sim.faults.load_errors[QWEN] = GUARDRAIL_MESSAGE
    backend = make_backend(sim, lms_cli=lms)
    with pytest.raises(BackendRejected, match="insufficient system resources") as info:
        await backend.load(QWEN, identifier=QWEN, ttl_s=60)
    assert not info.value.transient
    assert "22.92 GB" in str(info.value)
    await backend.aclose()


async def test_lms_not_finding_the_model_is_unknown_model(sim: Simulator, lms: str) -> None:
    sim.faults.cli_fail["load"] = (1, NOT_FOUND_BLOCK.format(key=QWEN))
    backend = make_backend(sim, lms_cli=lms)
    with pytest.raises(UnknownModel) as info:
        await backend.load(QWEN, identifier=QWEN, ttl_s=60)
    assert EMBED in info.value.available
    await backend.aclose()


async def test_identifier_in_use_is_rejected(sim: Simulator, lms: str) -> None:
    sim.preload(QWEN, identifier="taken")
    backend = make_backend(sim, lms_cli=lms)
    with pytest.raises(BackendRejected, match="already exists"):
        await backend.load(QWEN, identifier="taken", ttl_s=60)
    await backend.aclose()


async def test_lms_that_cannot_reach_lm_studio_is_unreachable(sim: Simulator, lms: str) -> None:
    """F3: the real texts of lms createClient.ts, the --port one produced by the fake lms."""
    backend = make_backend(sim, lms_cli=lms, prefer_cli=True)
    await sim.stop()
    with pytest.raises(BackendUnreachable, match="does not appear to be running") as info:
        await backend.list_loaded()
    assert info.value.transient
    await sim.start()
    sim.faults.cli_fail["load"] = (1, LOCAL_UNREACHABLE)
    with pytest.raises(BackendUnreachable, match="Failed to start or connect") as info:
        await backend.load(QWEN, identifier=QWEN, ttl_s=60)
    assert info.value.transient
    await backend.aclose()


async def test_slow_load_keeps_status_answerable(sim: Simulator, lms: str) -> None:
    gate = sim.faults.hold_load(QWEN)
    backend = make_backend(sim, lms_cli=lms)
    done = trio.Event()

    async def load() -> None:
        await backend.load(QWEN, identifier=QWEN, ttl_s=60)
        done.set()

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(load)
            await sim.wait_for(lambda: bool(sim.cli_runs("load")))
            assert await backend.list_loaded() == []  # a loading model is not listed
            assert not done.is_set()
            gate.set()
    assert sim.loaded() == [QWEN]
    await backend.aclose()


async def test_hung_lms_is_killed_at_the_deadline_and_reaped(sim: Simulator, lms: str) -> None:
    sim.faults.cli_hang.add("load")
    backend = make_backend(sim, lms_cli=lms, load_timeout_s=0.5)
    with trio.fail_after(10), pytest.raises(BackendTimeout, match="killed") as info:
        await backend.load(QWEN, identifier=QWEN, ttl_s=60)
    assert info.value.transient
    (run,) = sim.cli_runs("load")
    assert not alive(run.pid)  # terminated and reaped: no orphan, no zombie
    await backend.aclose()


async def test_hung_ps_times_out_too(sim: Simulator, lms: str) -> None:
    sim.faults.cli_hang.add("*")
    backend = make_backend(sim, lms_cli=lms, prefer_cli=True, cli_timeout_s=0.5)
    with trio.fail_after(10), pytest.raises(BackendTimeout):
        await backend.list_loaded()
    assert not any(alive(run.pid) for run in sim.cli_calls)
    await backend.aclose()


async def test_cancelling_a_load_kills_lms(sim: Simulator, lms: str) -> None:
    sim.faults.cli_hang.add("load")
    backend = make_backend(sim, lms_cli=lms)
    with trio.move_on_after(10) as scope:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(partial(backend.load, QWEN, identifier=QWEN, ttl_s=60))
            await sim.wait_for(lambda: bool(sim.cli_runs("load")))
            nursery.cancel_scope.cancel()
    assert not scope.cancelled_caught
    assert not alive(sim.cli_runs("load")[0].pid)
    await backend.aclose()


async def test_a_timed_out_load_is_interrupted_so_lm_studio_cancels_it(
    sim: Simulator, lms: str
) -> None:
    """F8: SIGINT (not SIGTERM) makes lms load abort the load inside LM Studio."""
    gate = sim.faults.hold_load(QWEN)
    backend = make_backend(sim, lms_cli=lms, load_timeout_s=0.5)
    with trio.fail_after(10), pytest.raises(BackendTimeout):
        await backend.load(QWEN, identifier=QWEN, ttl_s=60)
    (run,) = sim.cli_runs("load")
    assert sim.cli_cancelled == [run.pid]
    assert not alive(run.pid)
    gate.set()  # had the load gone on inside LM Studio, it would finish now
    await trio.testing.wait_all_tasks_blocked()
    assert sim.loaded() == []
    await backend.aclose()


async def test_a_load_that_completes_despite_the_timeout_is_unloaded(
    sim: Simulator, lms: str
) -> None:
    """F8: whatever still completes after a timed-out lms load is not left behind."""
    sim.faults.cli_hang.add("load")
    sim.preload(QWEN, identifier=QWEN)  # as if LM Studio finished the load anyway
    backend = make_backend(sim, lms_cli=lms, load_timeout_s=0.5)
    with trio.fail_after(10), pytest.raises(BackendTimeout):
        await backend.load(QWEN, identifier=QWEN, ttl_s=60)
    assert sim.loaded() == []
    await backend.aclose()


async def test_load_ok_but_absent_returns_and_leaves_nothing(sim: Simulator, lms: str) -> None:
    sim.faults.load_absent.add(QWEN)
    backend = make_backend(sim, lms_cli=lms)
    await backend.load(QWEN, identifier=QWEN, ttl_s=60)  # the core's verification catches this
    assert await backend.list_loaded() == []
    await backend.aclose()


async def test_prefer_cli_lists_and_unloads_through_lms(sim: Simulator, lms: str) -> None:
    sim.preload(QWEN, ttl_s=300)
    backend = make_backend(sim, lms_cli=lms, prefer_cli=True)
    models = {m.key: m for m in await backend.list_available()}
    assert set(models) == set(sim.state.catalog)
    assert models[EMBED].type == "embedding"
    assert models[QWEN].capabilities == ("tool_use",)
    assert await backend.list_loaded() == [
        LoadedModel(identifier=QWEN, key=QWEN, ttl_s=300.0, context_length=4096)
    ]
    await backend.unload(QWEN)
    await backend.unload("never-loaded")  # not in lms ps: nothing to run
    assert sim.loaded() == []
    assert [r.argv[:2] for r in sim.cli_runs("unload")] == [("unload", QWEN)]
    assert sim.requests("/api/v1/models") == []  # everything went through lms
    await backend.aclose()


async def test_a_busy_model_is_still_loaded(sim: Simulator, lms: str) -> None:
    """The old bridge treated ``generating`` as unavailable and reloaded; we do not."""
    inst = sim.preload(QWEN)
    inst.active = 1  # lms ps reports "generating"
    backend = make_backend(sim, lms_cli=lms, prefer_cli=True)
    assert [(m.identifier, m.status) for m in await backend.list_loaded()] == [(QWEN, "loaded")]
    await backend.aclose()


async def test_v0_server_lists_loaded_through_lms_and_unloads_with_it(lms: str) -> None:
    async with open_simulator(api="v0") as sim:
        sim.preload(QWEN, ttl_s=120)
        backend = make_backend(sim, lms_cli=lms)
        assert await backend.list_loaded() == [
            LoadedModel(identifier=QWEN, key=QWEN, ttl_s=120.0, context_length=4096)
        ]
        await backend.unload(QWEN)
        assert sim.loaded() == []
        await backend.aclose()


@pytest.mark.parametrize(
    ("stdout", "match"),
    [
        ("No models are currently loaded.\n", "expected a JSON array"),
        ('[{"identifier": "x"', "malformed JSON"),
        ('[{"identifier": 5, "modelKey": "k"}]', "unexpected answer shape"),
        ('{"identifier": "x"}', "expected a JSON array"),
    ],
)
async def test_malformed_lms_output_is_a_protocol_error(
    sim: Simulator, lms: str, stdout: str, match: str
) -> None:
    sim.faults.cli_stdout["ps"] = stdout
    backend = make_backend(sim, lms_cli=lms, prefer_cli=True)
    with pytest.raises(BackendProtocolError, match=match):
        await backend.list_loaded()
    await backend.aclose()


async def test_banner_before_json_is_tolerated(sim: Simulator, lms: str) -> None:
    sim.faults.cli_stdout["ps"] = (
        'Waking up LM Studio service...\n[{"identifier": "a", "modelKey": "k"}]'
    )
    backend = make_backend(sim, lms_cli=lms, prefer_cli=True)
    assert await backend.list_loaded() == [LoadedModel(identifier="a", key="k")]
    await backend.aclose()


async def test_missing_lms_falls_back_to_rest(
    sim: Simulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    remove_lms(monkeypatch, tmp_path)
    with pytest.raises(ConfigError, match=r"lmstudio\.lms_cli = '/no/such/lms'"):
        make_backend(sim, lms_cli="/no/such/lms", prefer_cli=True)  # a wrong path: refused
    backend = make_backend(sim, prefer_cli=True)  # none configured and none on PATH
    assert backend.cli() is None
    assert "lms=None" in repr(backend)
    sim.preload(QWEN)
    assert [m.identifier for m in await backend.list_loaded()] == [QWEN]
    await backend.unload(QWEN)
    assert sim.loaded() == []
    await backend.load(EMBED, identifier=EMBED, ttl_s=30)  # JIT with a TTL instead
    assert sim.state.loads[-1].via == "jit"
    assert sim.cli_calls == []
    await backend.aclose()


async def test_lms_removed_after_discovery_is_a_clear_error(
    sim: Simulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    lms = install_fake_lms(monkeypatch, tmp_path)
    backend = make_backend(sim, lms_cli=lms, prefer_cli=True)
    assert backend.cli() is not None
    Path(lms).unlink()
    with pytest.raises(BackendRejected, match="cannot run the lms CLI"):
        await backend.list_loaded()
    await backend.aclose()


async def test_huge_lms_output_is_bounded(sim: Simulator, lms: str) -> None:
    sim.faults.cli_stdout["ps"] = "[" + " " * (9 * 1024 * 1024) + "]"
    backend = make_backend(sim, lms_cli=lms, prefer_cli=True)
    with pytest.raises(BackendProtocolError):
        await backend.list_loaded()  # cut at 8 MiB, so the array never closes
    await backend.aclose()
