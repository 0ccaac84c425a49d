"""Fixtures of the MCP frontend tests: the server over a fake backend, or over the simulator."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.mcp_frontend.mcp_support import Fake, LMStudio, fake_stack, lmstudio_stack


@pytest.fixture
async def fake(tmp_path: Path) -> AsyncIterator[Fake]:
    async with fake_stack(tmp_path) as stack:
        yield stack


@pytest.fixture
async def lm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[LMStudio]:
    async with lmstudio_stack(tmp_path, monkeypatch) as stack:
        yield stack
