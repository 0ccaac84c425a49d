"""The download tools through the in-memory MCP client, against the LM Studio simulator."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import msgspec
import pytest
import trio
from mcp import Client

from orchestrator import Orchestrator, open_orchestrator
from tests.fakes import SimModel, Simulator, open_simulator
from tests.fakes.fixtures import install_fake_lms, make_backend
from tests.mcp_frontend.mcp_support import FAST, Fake, error, make_settings, mcp_client, ok

GRANITE = "ibm/granite-4-micro"
SIZE = 2_279_145_003


@dataclass
class Stack:
    sim: Simulator
    orch: Orchestrator
    client: Client


@pytest.fixture
async def stack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Stack]:
    lms = install_fake_lms(monkeypatch, tmp_path)
    config = msgspec.structs.replace(FAST, allow_downloads=True)
    async with open_simulator() as sim:
        sim.downloads.remote[GRANITE] = SimModel(key=GRANITE, size_bytes=SIZE)
        backend = make_backend(sim, lms_cli=lms)
        try:
            async with (
                open_orchestrator(backend, config) as orch,
                mcp_client(orch, make_settings(tmp_path)) as client,
            ):
                yield Stack(sim, orch, client)
        finally:
            await backend.aclose()


async def test_download_with_wait_reports_bytes_then_load_model_loads_it(stack: Stack) -> None:
    seen: list[tuple[float, float | None, str]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append((progress, total, message or ""))

    with trio.fail_after(10):
        out = ok(
            await stack.client.call_tool(
                "download_model", {"model": GRANITE, "wait": True}, progress_callback=on_progress
            )
        )
    assert out["state"] == "completed", out["error"]
    assert out["model_key"] == GRANITE
    assert out["downloaded_bytes"] == out["total_bytes"] == SIZE
    assert out["joined"] is False
    values = [p for p, _, _ in seen]
    assert len(values) >= 2
    assert values == sorted(set(values))  # MCP progress grows with every notification
    assert all(t == SIZE for _, t, _ in seen[1:])
    assert any(0 < p < SIZE for p in values)
    assert any(m.startswith(f"{GRANITE}: downloading ") and "MB/s" in m for _, _, m in seen)
    with trio.fail_after(10):
        loaded = ok(await stack.client.call_tool("load_model", {"model": GRANITE}))
    assert loaded["status"]["state"] == "READY"
    assert [i.key for i in stack.sim.state.instances.values()] == [GRANITE]
    listed = ok(await stack.client.call_tool("list_models", {"key_contains": "granite"}))
    assert [(m["key"], m["downloaded"], m["loaded"]) for m in listed["models"]] == [
        (GRANITE, True, True)
    ]
    assert listed["totals"]["loaded_bytes"] == SIZE


async def test_without_wait_the_job_is_returned_and_download_status_follows_it(
    stack: Stack,
) -> None:
    started = ok(await stack.client.call_tool("download_model", {"model": GRANITE}))
    assert started["state"] == "downloading"
    joined = ok(await stack.client.call_tool("download_model", {"model": GRANITE}))
    assert joined["job_id"] == started["job_id"]
    assert joined["joined"] is True
    with trio.fail_after(10):
        await stack.orch.downloads.wait(started["job_id"], timeout_s=10)
    status = ok(await stack.client.call_tool("download_status", {"job_id": started["job_id"]}))
    [job] = status["jobs"]
    assert (job["state"], job["downloaded_bytes"], job["new_models"]) == (
        "completed",
        SIZE,
        [GRANITE],
    )
    every = ok(await stack.client.call_tool("download_status", {}))
    assert [j["job_id"] for j in every["jobs"]] == [started["job_id"]]
    assert stack.sim.count("/api/v1/models/download", method="POST") == 1


async def test_an_unknown_job_and_a_failed_download_are_clear_errors(stack: Stack) -> None:
    msg = error(await stack.client.call_tool("cancel_download", {"job_id": "dl-99"}))
    assert "no download job 'dl-99'" in msg
    stack.sim.downloads.fail_at[GRANITE] = 0.5
    with trio.fail_after(10):
        out = ok(await stack.client.call_tool("download_model", {"model": GRANITE, "wait": True}))
    assert out["state"] == "failed"
    assert "failed after" in out["error"]


async def test_downloads_are_refused_unless_allowed_and_say_how(fake: Fake) -> None:
    msg = error(await fake.client.call_tool("download_model", {"model": "x/y"}))
    assert "disabled" in msg
    assert "LMSORCH_ALLOW_DOWNLOADS=1" in msg
