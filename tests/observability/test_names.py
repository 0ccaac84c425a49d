"""Odd model names never break the exposition, and names no actor manages never become labels."""

from __future__ import annotations

from typing import Any

import pytest
import trio
from mcp import Client

from mcp_frontend.server import build_server
from mcp_frontend.settings import FrontendSettings
from orchestrator import InvalidModelName, Metrics, State, UnknownModel, open_orchestrator
from orchestrator.metrics import OTHER
from orchestrator.testing import FakeBackend

from .support import parse_exposition, series_with, value

ODD = ['we"ird', "back\\slash", "new\nline", "ünï©ødé-模型", "a}b{c=d,e", "", "x" * 300]


def test_odd_label_values_round_trip_through_the_exposition() -> None:
    # Catalogue keys come from the backend; even if one were odd, the format holds.
    metrics = Metrics()
    for name in ODD:
        metrics.register_model(name)
        metrics.load_attempts.labels(model=name, result="ok").inc()
        metrics.set_state(name, State.READY)
    text = metrics.exposition().decode()
    samples = parse_exposition(text)
    for name in ODD:
        assert value(samples, "lmsorch_model_load_attempts_total", model=name, result="ok") == 1
        assert value(samples, "lmsorch_model_state", model=name, state="READY") == 1
    assert value(samples, "lmsorch_loaded_models") == len(ODD)
    # Every sample is on its own line: no raw newline escaped into a label value.
    assert all(line.startswith(("#", "lmsorch_")) for line in text.splitlines() if line), (
        "a label value broke a line"
    )


BAD = ['quo"te', "back\\slash", "new\nline", "ünïcode", "-flag", "../etc", " ", "x" * 300]


async def test_names_that_are_not_managed_models_never_become_series() -> None:
    async with open_orchestrator(FakeBackend(["real"])) as orch:
        for name in BAD:
            with pytest.raises(InvalidModelName):
                await orch.ensure_loaded(name)
        with pytest.raises(UnknownModel):
            await orch.ensure_loaded("not-in-the-catalogue")
        await orch.ensure_loaded("real")
        samples = parse_exposition(orch.metrics.exposition().decode())
    for name in [*BAD, "not-in-the-catalogue"]:
        assert series_with(samples, name) == [], name
    waits = value(samples, "lmsorch_model_wait_seconds_count", model=OTHER, outcome="error")
    assert waits == 1  # the unknown model; invalid names fail before any wait starts
    assert value(samples, "lmsorch_model_wait_seconds_count", model="real", outcome="ok") == 1
    models = {dict(k[1]).get("model") for k in samples} - {None}
    assert models == {"real", OTHER}


async def test_inference_for_unknown_models_is_counted_as_other() -> None:
    async with (
        open_orchestrator(FakeBackend(["real"])) as orch,
        Client(build_server(orch, settings=FrontendSettings())) as client,
    ):
        messages: list[dict[str, Any]] = [{"role": "user", "content": "hi"}]
        with trio.fail_after(30):
            for name in ['quo"te\n', "not-there", "ünï"]:
                result = await client.call_tool(
                    "chat_completion", {"model": name, "messages": messages}
                )
                assert result.is_error
        samples = parse_exposition(orch.metrics.exposition().decode())
    for name in ['quo"te\n', "not-there", "ünï"]:
        assert series_with(samples, name) == []
    counted = [k for k in samples if k[0] == "lmsorch_inference_requests_total"]
    assert counted == [
        (
            "lmsorch_inference_requests_total",
            (("endpoint", "chat"), ("model", OTHER), ("outcome", "error")),
        )
    ]
    assert samples[counted[0]] == 3
    timed = ("lmsorch_inference_duration_seconds_count", counted[0][1])
    assert samples[timed] == 3
