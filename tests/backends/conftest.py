"""Fixtures for backend tests: the real demo model, process inspection, no orphans."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any, Protocol

import pytest

from orchestrator.backends.llamacpp import LlamaCppBackend
from orchestrator.backends.provision import fetch_demo_model
from orchestrator.config import Config, LlamaCppSettings
from tests.fakes import Simulator, open_simulator

from .llamacpp_support import FakeServer, Procs


@pytest.fixture(scope="session")
def demo_model_dir() -> Path:
    """The models directory holding the verified demo model (fetched once if missing)."""
    models_dir = Config.load().llamacpp.resolved_models_dir()
    fetch_demo_model(models_dir)
    return models_dir


@pytest.fixture
def procs() -> Iterator[Procs]:
    """Process helpers; fails the test if it leaves a worker process of ours running."""
    yield Procs()
    leftover = Procs().workers_of_me()
    assert not leftover, f"orphaned llama.cpp workers: {leftover}"


class MakeSettings(Protocol):
    def __call__(self, **overrides: Any) -> LlamaCppSettings: ...


@pytest.fixture
def make_settings(demo_model_dir: Path) -> MakeSettings:
    """Build ``LlamaCppSettings`` over the demo models dir, with short timeouts by default.

    One thread per worker: with two on a 2-core machine, any other busy process
    (a parallel test run, a pip install) stalls llama.cpp's thread barrier and a
    16-token chat can take seconds instead of 0.2 s.
    """

    def make(**overrides: Any) -> LlamaCppSettings:
        fields: dict[str, Any] = {
            "models_dir": str(demo_model_dir),
            "threads": 1,
            "start_timeout_s": 30.0,
            "stop_timeout_s": 2.0,
        }
        return LlamaCppSettings(**(fields | overrides))

    return make


@pytest.fixture
async def llama_backend(
    procs: Procs, make_settings: MakeSettings
) -> AsyncIterator[LlamaCppBackend]:
    """A backend over the demo models directory, closed (workers stopped) after the test."""
    backend = LlamaCppBackend(make_settings())
    try:
        yield backend
    finally:
        await backend.aclose()


@pytest.fixture
def fake_server(tmp_path: Path) -> Callable[[str], FakeServer]:
    """``fake_server(body)``: make a fake ``llama-server`` executable for failure tests."""
    directory = tmp_path / "fake-servers"
    directory.mkdir()
    return lambda body: FakeServer(directory, body)


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with open_simulator() as s:
        yield s
