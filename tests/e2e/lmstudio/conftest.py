"""Fixtures of the LM Studio end-to-end tests: the simulator and a backend over it.

They replace the e2e folder's embedded llama.cpp ``backend``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from orchestrator.backends.lmstudio import LMStudioBackend
from tests.fakes import Simulator, open_simulator
from tests.fakes.fixtures import make_backend


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    # JIT off: an evicted model must come back through the orchestrator, not silently.
    async with open_simulator(jit=False) as s:
        yield s


@pytest.fixture
async def backend(sim: Simulator, lms: str) -> AsyncIterator[LMStudioBackend]:
    b = make_backend(sim, lms_cli=lms)
    yield b
    await b.aclose()
