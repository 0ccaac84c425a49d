"""Helpers: serve the observability endpoints on loopback, scrape and parse them."""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import httpx
import trio
from prometheus_client.parser import text_string_to_metric_families

from mcp_frontend.transports.http import serve_observability
from mcp_frontend.transports.observability import ObservabilityApp, StatusSource
from orchestrator import Config, Orchestrator
from orchestrator.logs import configure_logging
from orchestrator.testing import FakeBackend

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]

QUICK = Config(
    retry_attempts=3,
    retry_initial_s=1.0,
    retry_max_s=4.0,
    retry_jitter_s=0.0,
    breaker_threshold=2,
    breaker_cooldown_s=60.0,
    verify_deadline_s=5.0,
    adopt_loaded=False,
)
"""Deterministic policies for scripted scenarios on the virtual clock."""


def parse_exposition(text: str) -> Samples:
    """Every sample of a Prometheus text exposition, keyed by name and sorted labels."""
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    """One sample's value (KeyError when the series does not exist)."""
    return samples[(name, tuple(sorted(labels.items())))]


def series_with(samples: Samples, label_value: str) -> list[tuple[str, Any]]:
    """Every series carrying ``label_value`` in any label."""
    return [key for key in samples if any(v == label_value for _, v in key[1])]


@asynccontextmanager
async def serving(
    source: StatusSource | Orchestrator, *, token: str | None = None, buffer: int = 1024
) -> AsyncIterator[str]:
    """Serve the observability endpoints on 127.0.0.1 (a free port); yield the base URL."""
    if not isinstance(source, StatusSource):
        source = StatusSource(source.metrics, source)
    app = ObservabilityApp(source, events_buffer=buffer)
    async with trio.open_nursery() as nursery:
        [base] = await nursery.start(partial(serve_observability, app, port=0, token=token))
        yield base
        nursery.cancel_scope.cancel()


async def get(url: str, *, token: str | None = None) -> httpx.Response:
    """GET ``url`` (bounded), with the bearer token when given."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    with trio.fail_after(10):
        async with httpx.AsyncClient(trust_env=False) as client:
            return await client.get(url, headers=headers)


class LogCapture:
    """Log lines captured as parsed JSON objects."""

    def __init__(self) -> None:
        self.stream = io.StringIO()

    def lines(self) -> list[dict[str, Any]]:
        """Every line written so far, parsed (a line that is not JSON fails the test)."""
        return [json.loads(line) for line in self.stream.getvalue().splitlines() if line]

    def events(self, name: str) -> list[dict[str, Any]]:
        """The lines whose ``event`` is ``name``."""
        return [line for line in self.lines() if line["event"] == name]


def restore_test_logging() -> None:
    """Back to the suite's default (tests/conftest.py): warnings, in memory."""
    configure_logging("warning", stream=io.StringIO(), json=True)


class GatedBackend(FakeBackend):
    """A FakeBackend whose unloads wait for :attr:`unload_gate` (to hold a shutdown open)."""

    def __init__(self, models: list[str]) -> None:
        super().__init__(models)
        self.unload_gate = trio.Event()
        self.unload_started = trio.Event()

    async def unload(self, identifier: str) -> None:
        """Record the unload, then wait for the gate."""
        self.unload_started.set()
        await self.unload_gate.wait()
        await super().unload(identifier)
