"""MCP progress follows the change feed: every state once, short ones included; fast calls quiet."""

from __future__ import annotations

import pytest
import trio
from mcp import Client

from mcp_frontend.server import build_server
from mcp_frontend.settings import FrontendSettings
from orchestrator import Config, open_orchestrator
from orchestrator.testing import FakeBackend

SETTINGS = FrontendSettings(progress_interval_s=0.01)


@pytest.mark.parametrize("listed", [True, False])
async def test_a_load_reports_each_state_it_passes_through(listed: bool) -> None:
    backend = FakeBackend(["m"])
    gate = backend.script("m").gate = trio.Event()
    backend.script("m").never_listed = not listed
    config = Config(verify_deadline_s=0.05, retry_attempts=1)
    seen: list[str] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append(message or "")
        if message == "m: LOADING":
            gate.set()  # the load may finish once its first state was reported

    async with (
        open_orchestrator(backend, config) as orch,
        Client(build_server(orch, settings=SETTINGS)) as client,
    ):
        with trio.fail_after(10):
            result = await client.call_tool(
                "load_model", {"model": "m"}, progress_callback=on_progress
            )
    assert result.is_error is not listed
    # The closing report may repeat the last one (if that one was cut short): fold repeats.
    seen = [line for i, line in enumerate(seen) if i == 0 or line != seen[i - 1]]
    if listed:
        assert seen == ["m: LOADING", "m: VERIFYING", "m: READY"]
    else:
        # VERIFYING lasts 50 ms, and its failure is reported with the count and the reason.
        assert seen[:2] == ["m: LOADING", "m: VERIFYING"]
        # It is answered as the cleanup starts (it may be loaded all the same: issue 16).
        assert seen[2].startswith("m: EXPIRING (1 failed attempts, last: model 'm' reported")
        assert len(seen) == 3


async def test_a_call_on_a_ready_model_reports_nothing() -> None:
    seen: list[str] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append(message or "")

    async with (
        open_orchestrator(FakeBackend(["m"])) as orch,
        Client(build_server(orch, settings=FrontendSettings(progress_interval_s=60))) as client,
    ):
        await orch.ensure_loaded("m")
        with trio.fail_after(10):
            result = await client.call_tool(
                "load_model", {"model": "m"}, progress_callback=on_progress
            )
    assert not result.is_error
    assert seen == []
