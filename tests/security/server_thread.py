"""One MCP server over the LM Studio simulator, running in a background trio thread.

Hypothesis drives examples from synchronous code, and starting a server per
example would cost more than the examples themselves. So a module-scoped
fixture starts the whole stack (simulator, orchestrator, server, in-memory
client) once in its own thread, and each example calls a tool through
:meth:`ServerThread.call`, which hops into that thread's trio loop and bounds
the call with ``trio.fail_after``.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import threading
import traceback
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
import trio
from mcp import Client
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError, UnexpectedToolError
from mcp.shared.exceptions import MCPError
from mcp.types import CallToolResult, TextContent, Tool

from mcp_frontend.checks.remote_images import RemoteFetcher
from mcp_frontend.server import build_server
from mcp_frontend.settings import FrontendSettings
from orchestrator import Config, open_orchestrator
from orchestrator.inference import InferenceClient
from tests.fakes import Reply, Simulator, open_simulator
from tests.fakes.fixtures import make_backend

__all__ = [
    "CALL_DEADLINE_S",
    "JSON_ANSWER",
    "PNG_1PX",
    "PUBLIC",
    "CrashLog",
    "ServerThread",
    "message",
    "serve_in_thread",
]

CALL_DEADLINE_S = 10.0
"""No tool call may take longer than this, whatever its arguments (a hang fails the test)."""

PUBLIC = "93.184.216.34"
PNG_1PX = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMBAQDJ/pLvAAAAAElFTkSuQmCC"
)
QWEN = "qwen/qwen3-4b"
JSON_ANSWER = '{"a": "x", "b": [1, {"c": null}]}'
"""What the default model answers (JSON, so answers are checked against any requested schema)."""
SCRIPTED_ANSWERS = 5000
EMBED = "text-embedding-nomic-embed-text-v1.5"

_CONFIG = Config(
    default_model=QWEN,
    default_embedding_model=EMBED,
    retry_attempts=1,
    retry_initial_s=0.0,
    retry_jitter_s=0.0,
    verify_initial_interval_s=0.005,
    verify_max_interval_s=0.02,
    verify_deadline_s=2.0,
    request_timeout_s=5.0,
    unload_timeout_s=5.0,
    shutdown_timeout_s=5.0,
)


async def _resolve(host: str, port: int) -> list[str]:
    await trio.lowlevel.checkpoint()
    addresses = {"images.example": [PUBLIC], "localhost": ["127.0.0.1"], "intranet": ["10.0.0.7"]}
    if host not in addresses:
        raise OSError("Name or service not known")
    return addresses[host]


_NO_REQUEST = "Context is not available outside of a request"


class CrashLog(logging.Handler):
    """Collects log records that carry an exception: the SDK logs every tool crash so."""

    def __init__(self) -> None:
        super().__init__(level=logging.ERROR)
        self.crashes: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        """Keep records with exception info."""
        if record.exc_info:
            self.crashes.append(record)


class ServerThread:
    """The server stack in a background trio thread; see the module docstring."""

    def __init__(
        self,
        settings: FrontendSettings,
        *,
        sim_token: str | None = None,
        backend_token: str | None = None,
    ) -> None:
        self._settings = settings
        self._sim_token = sim_token
        self._backend_token = backend_token
        self.fetched: list[httpx.Request] = []
        self._ready = threading.Event()
        self._token: trio.lowlevel.TrioToken | None = None
        self._stop: trio.Event | None = None
        self._client: Client | None = None
        self._server: MCPServer[Any] | None = None
        self._sim: Simulator | None = None
        self._failure: BaseException | None = None
        self.tools: list[Tool] = []
        self._thread = threading.Thread(target=self._run, name="mcp-server", daemon=True)

    def _run(self) -> None:
        try:
            trio.run(self._main)
        except BaseException as exc:  # noqa: BLE001 - re-raised by stop(), in the test thread
            self._failure = exc
        finally:
            self._ready.set()

    async def _main(self) -> None:
        config = msgspec.structs.replace(_CONFIG)
        async with (
            open_simulator(jit=True, api_token=self._sim_token) as sim,
            InferenceClient(timeout_s=5) as inference,
        ):
            self._sim = sim
            sim.script(QWEN, *[Reply(content=JSON_ANSWER)] * SCRIPTED_ANSWERS)
            backend = make_backend(sim, api_token=self._backend_token)
            try:
                async with open_orchestrator(backend, config) as orch:
                    server = build_server(
                        orch,
                        settings=self._settings,
                        inference_client=inference,
                        fetcher=RemoteFetcher(
                            transport=httpx.MockTransport(self._web), resolve=_resolve
                        ),
                    )
                    self._server = server
                    async with Client(server) as client:
                        self._client = client
                        self.tools = (await client.list_tools()).tools
                        self._stop = trio.Event()
                        self._token = trio.lowlevel.current_trio_token()
                        self._ready.set()
                        await self._stop.wait()
            finally:
                await backend.aclose()

    def _web(self, request: httpx.Request) -> httpx.Response:
        # The only "internet" there is: one public host with one picture.
        self.fetched.append(request)
        if request.headers.get("host") == "images.example" and request.url.path == "/cat.png":
            return httpx.Response(200, content=PNG_1PX)
        return httpx.Response(404)

    def start(self) -> None:
        """Start the thread and wait until the server answers (or failed to start)."""
        self._thread.start()
        if not self._ready.wait(timeout=30) or self._token is None:
            self.stop()
            raise RuntimeError("the server thread did not start")

    def call(self, tool: str, arguments: dict[str, Any]) -> CallToolResult:
        """Call ``tool`` in the server's loop; raises TooSlowError past CALL_DEADLINE_S."""
        assert self._token is not None, "not started"
        assert self._client is not None, "not started"
        client = self._client

        async def bounded() -> CallToolResult:
            with trio.fail_after(CALL_DEADLINE_S):
                return await client.call_tool(tool, arguments)

        return trio.from_thread.run(bounded, trio_token=self._token)

    def registered_tool_names(self) -> set[str]:
        """Every tool registered on the running server, listed or not."""
        assert self._server is not None, "not started"
        return {t.name for t in self._server._tool_manager.list_tools()}

    def read(self, uri: str) -> str:
        """Read resource ``uri``; returns its text, or ``error: <message>`` for an MCP error."""
        assert self._token is not None, "not started"
        assert self._client is not None, "not started"
        client = self._client

        async def bounded() -> str:
            with trio.fail_after(CALL_DEADLINE_S):
                try:
                    result = await client.read_resource(uri)
                except MCPError as exc:
                    return f"error: {exc}"
                return "".join(getattr(c, "text", "") for c in result.contents)

        return trio.from_thread.run(bounded, trio_token=self._token)

    def script(self, model: str, *replies: Reply) -> None:
        """Queue the simulator's next answers for ``model``."""
        assert self._token is not None, "not started"
        assert self._sim is not None, "not started"
        trio.from_thread.run_sync(
            partial(self._sim.script, model, *replies), trio_token=self._token
        )

    def model_requests(self) -> list[Any]:
        """The bodies of every inference request the simulator received, in order."""
        assert self._sim is not None, "not started"
        return [c.body for c in self._sim.requests() if c.path.startswith("/v1/")]

    def call_unencoded(self, tool: str, arguments: dict[str, Any]) -> str | None:
        """Call ``tool`` on the server object, skipping the client's JSON encoding.

        The wire accepts values our client would never send (the SDK parses
        ``NaN`` and ``Infinity`` in JSON); this passes them as they arrive.
        Returns None on success, else the tool error's message. Without a client
        request there is no request context, so a tool that got past validation
        and reports progress stops there: that also counts as accepted.

        Raises:
            UnexpectedToolError: the tool crashed.
        """
        assert self._token is not None, "not started"
        assert self._server is not None, "not started"
        server = self._server

        async def bounded() -> str | None:
            with trio.fail_after(CALL_DEADLINE_S):
                try:
                    await server.call_tool(tool, arguments)
                except UnexpectedToolError as exc:
                    if _NO_REQUEST in "".join(traceback.format_exception(exc)):
                        return None  # validation passed and the tool started
                    raise
                except ToolError as exc:
                    return str(exc)
                return None

        return trio.from_thread.run(bounded, trio_token=self._token)

    def stop(self) -> None:
        """Stop the stack and re-raise anything that crashed its loop."""
        if self._token is not None and self._stop is not None:
            with suppress(trio.RunFinishedError):
                trio.from_thread.run_sync(self._stop.set, trio_token=self._token)
        self._thread.join(timeout=30)
        assert not self._thread.is_alive(), "the server thread did not stop"
        if self._failure is not None:
            raise self._failure


def message(result: CallToolResult) -> str:
    """The text of an error result ("" for a success)."""
    if not result.is_error:
        return ""
    block = result.content[0]
    assert isinstance(block, TextContent)
    return block.text


@contextmanager
def serve_in_thread(
    tmp: Path,
    *,
    sim_token: str | None = None,
    backend_token: str | None = None,
    mcp_servers: dict[str, Any] | None = None,
    agent_roots: tuple[Path, ...] = (),
    **settings: Any,
) -> Iterator[ServerThread]:
    """Run the stack with images allowed under ``tmp/images`` (plus ``settings``).

    Remote images, when ``allow_remote_images`` is set, come from a mock web
    (``https://images.example/cat.png`` is the one picture); nothing leaves the process.
    ``sim_token`` makes the simulator require an API token, ``backend_token`` is
    the one the backend sends. Agent tools see ``mcp_servers`` (none by
    default) and ``agent_roots`` (by default the agent's own default).
    """
    images = tmp / "images"
    images.mkdir(exist_ok=True)
    # Agent tools find no MCP server to start (an empty mcp.json), and nothing
    # reads the real home directory.
    mcp_json = tmp / "mcp.json"
    mcp_json.write_text(json.dumps({"mcpServers": mcp_servers or {}}), encoding="utf-8")
    fields: dict[str, Any] = {"allowed_image_roots": (str(images),), "progress_interval_s": 0.01}
    with pytest.MonkeyPatch.context() as env:
        env.setenv("HOME", str(tmp))
        env.setenv("LMSORCH_AGENT_MCP_CONFIG", str(mcp_json))
        if agent_roots:
            env.setenv("LMSORCH_AGENT_ROOTS", os.pathsep.join(str(r) for r in agent_roots))
        server = ServerThread(
            FrontendSettings(**(fields | settings)),
            sim_token=sim_token,
            backend_token=backend_token,
        )
        server.start()
        try:
            yield server
        finally:
            server.stop()
