"""Fixtures of the real-model end-to-end tests: the demo model and an embedded backend."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from orchestrator import Config
from orchestrator.backends.llamacpp import LlamaCppBackend
from orchestrator.backends.provision import fetch_demo_model
from orchestrator.config import LlamaCppSettings
from tests.backends.llamacpp_support import Procs


@pytest.fixture(scope="module")
def models_dir() -> Path:
    directory = Config.load().llamacpp.resolved_models_dir()
    fetch_demo_model(directory)  # idempotent; normally done by `lmsorch models fetch-demo`
    return directory


@pytest.fixture
async def backend(models_dir: Path) -> AsyncIterator[LlamaCppBackend]:
    backend = LlamaCppBackend(LlamaCppSettings(models_dir=str(models_dir), threads=1))
    try:
        yield backend
    finally:
        await backend.aclose()
    assert not Procs.workers_of(os.getpid()), "llama.cpp worker processes left behind"
