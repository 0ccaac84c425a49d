"""Fixtures of the MCP frontend tests: the server over a fake backend, or over the simulator."""

from __future__ import annotations

from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path

import pytest
import trio

from mcp_frontend.server import build_server
from mcp_frontend.transports.http import serve_http
from tests.mcp_frontend.mcp_support import Fake, LMStudio, fake_stack, lmstudio_stack


@pytest.fixture
async def fake(tmp_path: Path) -> AsyncIterator[Fake]:
    async with fake_stack(tmp_path) as stack:
        yield stack


@pytest.fixture
async def lm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[LMStudio]:
    async with lmstudio_stack(tmp_path, monkeypatch) as stack:
        yield stack


@pytest.fixture
async def http_url(fake: Fake, request: pytest.FixtureRequest) -> AsyncIterator[str]:
    """The streamable HTTP URL of a server over ``fake`` on loopback (token: the param)."""
    token: str | None = getattr(request, "param", None)
    server = build_server(fake.orch, settings=fake.settings)
    async with trio.open_nursery() as nursery:
        [base] = await nursery.start(partial(serve_http, server, port=0, token=token))
        yield f"{base}/mcp"
        nursery.cancel_scope.cancel()
