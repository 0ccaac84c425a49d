"""A backend that accepts connections and never answers: calls fail fast and say so.

Before: the MCP ``initialize`` answer waited 31.5 s for adoption at start, and
``list_models``, ``load_model`` and ``chat_completion`` took 93.8 s each to fail
(three 30 s timeouts plus backoff). Now a control-plane read has its own short
deadline (``read_timeout_s``, 5 s), a silent server is not asked again within a
call, and adoption never holds the handshake.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import trio
from mcp import Client, StdioServerParameters

from mcp_frontend.server import build_server
from orchestrator import BackendSilent, Config, open_orchestrator
from orchestrator.backends.lmstudio import LMStudioBackend
from orchestrator.config import LMStudioSettings
from tests.fakes.fixtures import remove_lms
from tests.mcp_frontend.mcp_support import error, make_settings, server_env

SILENT = "accepted the connection but did not answer"


@dataclass
class Silent:
    """A TCP server on loopback that reads requests and never answers."""

    url: str
    connections: list[trio.SocketStream] = field(default_factory=list)


@pytest.fixture
async def silent() -> AsyncIterator[Silent]:
    async with trio.open_nursery() as nursery:
        [listener] = await trio.open_tcp_listeners(0, host="127.0.0.1")
        port = listener.socket.getsockname()[1]
        server = Silent(url=f"http://127.0.0.1:{port}")

        async def hold(stream: trio.SocketStream) -> None:
            server.connections.append(stream)
            async with stream:
                while await stream.receive_some():
                    pass  # read everything, answer nothing

        nursery.start_soon(trio.serve_listeners, hold, [listener])
        yield server
        nursery.cancel_scope.cancel()


async def test_a_read_fails_within_the_read_timeout_and_is_not_retried(
    silent: Silent, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    remove_lms(monkeypatch, tmp_path)
    backend = LMStudioBackend(LMStudioSettings(base_url=silent.url, read_timeout_s=0.5))
    async with open_orchestrator(backend, Config(adopt_loaded=False)) as orch:
        with trio.fail_after(3), pytest.raises(BackendSilent, match=SILENT):
            await orch.catalog()  # retried 3 times before: 3 reads and 1 s + 2 s of backoff
    await backend.aclose()
    assert len(silent.connections) == 1


async def test_the_handshake_is_immediate_and_list_models_fails_clearly(
    silent: Silent, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    remove_lms(monkeypatch, tmp_path)
    backend = LMStudioBackend(LMStudioSettings(base_url=silent.url))  # the default 5 s
    started = trio.current_time()
    try:
        async with (
            # Adoption (listing the loaded models: 5 s of silence) runs beside the session.
            open_orchestrator(backend, Config(), adopt_in_background=True) as orch,
            Client(build_server(orch, settings=make_settings(tmp_path))) as client,
        ):
            assert {t.name for t in (await client.list_tools()).tools} >= {"list_models"}
            ready_s = trio.current_time() - started
            with trio.fail_after(10):
                text = error(await client.call_tool("list_models", {}))
    finally:
        await backend.aclose()
    assert ready_s < 5.0  # did not wait for the backend's read timeout
    assert SILENT in text
    assert silent.url in text


async def test_lmsorch_serve_answers_initialize_without_waiting_for_the_backend(
    silent: Silent, tmp_path: Path
) -> None:
    # A long read timeout: a handshake held by adoption would take 30 s (adoption's bound,
    # verify_deadline_s) while the listing waits on the silent server.
    config = tmp_path / "lmsorch.toml"
    config.write_text("[lmstudio]\nread_timeout_s = 120\n")
    env = server_env(
        tmp_path, LMSTUDIO_BASE_URL=silent.url, LMSORCH_CONFIG=str(config), PATH="/usr/bin:/bin"
    )
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "mcp_frontend", "--backend", "lmstudio"], env=env
    )
    with trio.fail_after(25):  # generous for a loaded machine, far below 30 s
        async with Client(params) as client:
            tools = await client.list_tools()
    assert {t.name for t in tools.tools} >= {"list_models", "chat_completion"}
