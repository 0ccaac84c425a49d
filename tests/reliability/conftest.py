"""Fixtures of the reliability tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.fakes import Simulator, open_simulator


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with open_simulator(jit=False) as s:
        yield s
