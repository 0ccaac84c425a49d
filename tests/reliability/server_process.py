"""A real ``lmsorch serve`` process driven with raw JSON-RPC over its stdio.

Raw rather than through the SDK's client so a test controls exactly when the
process gets SIGTERM or SIGKILL, mid-call, and can wait for its exit.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import re
import subprocess
import sys
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from tests.fakes import Simulator
from tests.fakes.fixtures import install_fake_lms

__all__ = [
    "LMSORCH",
    "HttpServerProcess",
    "ServerProcess",
    "lmsorch_serve",
    "lmsorch_serve_http",
    "server_env",
    "simulator_server_env",
]

LMSORCH = str(Path(sys.executable).parent / "lmsorch")


def server_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """A clean environment for a server process: no inherited LMSORCH_* / LMSTUDIO_* settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LMSORCH_", "LMSTUDIO_"))}
    return env | {"HOME": str(tmp_path), "LMSORCH_SHUTDOWN_TIMEOUT_S": "10"} | extra


def simulator_server_env(
    sim: Simulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, model: str, **extra: str
) -> dict[str, str]:
    """:func:`server_env` for a server on ``sim`` with the fake ``lms`` and ``model`` as default."""
    lms = install_fake_lms(monkeypatch, tmp_path)
    return server_env(
        tmp_path,
        PATH=str(Path(lms).parent),
        LMSTUDIO_BASE_URL=sim.base_url,
        LMS_CLI=lms,
        LMSORCH_DEFAULT_MODEL=model,
        **extra,
    )


class ServerProcess:
    """A running server: send requests, wait for their answers, stop it."""

    def __init__(self, proc: trio.Process) -> None:
        self.proc = proc
        self.replies: dict[int, dict[str, Any]] = {}
        self._ids = itertools.count(1)
        self._changed = trio.Event()

    async def _read(self, stream: trio.abc.ReceiveStream) -> None:
        buffer = b""
        with contextlib.suppress(trio.ClosedResourceError):  # a test closed it on purpose
            async for chunk in stream:
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    message = json.loads(line)  # stdout carries JSON-RPC only
                    if "id" in message and ("result" in message or "error" in message):
                        self.replies[message["id"]] = message
                self._changed.set()
                self._changed = trio.Event()

    async def send(self, method: str, params: Mapping[str, Any] | None = None) -> int:
        """Send a request and return its id (use :meth:`reply` to wait for the answer)."""
        ident = next(self._ids)
        await self._write({"jsonrpc": "2.0", "id": ident, "method": method, "params": params or {}})
        return ident

    async def call_tool(self, name: str, arguments: Mapping[str, Any]) -> int:
        """Start a ``tools/call``; returns the request id."""
        return await self.send("tools/call", {"name": name, "arguments": dict(arguments)})

    async def reply(self, ident: int) -> dict[str, Any]:
        """Wait for the answer to request ``ident`` (bound it with ``trio.fail_after``)."""
        while ident not in self.replies:
            await self._changed.wait()
        return self.replies[ident]

    async def initialize(self) -> None:
        """The MCP handshake."""
        ident = await self.send(
            "initialize",
            {
                "protocolVersion": "2025-11-25",
                "capabilities": {},
                "clientInfo": {"name": "reliability", "version": "0"},
            },
        )
        await self.reply(ident)
        await self._write({"jsonrpc": "2.0", "method": "notifications/initialized"})

    async def _write(self, message: Mapping[str, Any]) -> None:
        assert self.proc.stdin is not None
        await self.proc.stdin.send_all(json.dumps(message).encode() + b"\n")


@asynccontextmanager
async def lmsorch_serve(
    env: Mapping[str, str],
    stderr: Path,
    argv: Sequence[str] = (LMSORCH, "serve", "--backend", "lmstudio"),
) -> AsyncIterator[ServerProcess]:
    """Run ``lmsorch serve --backend lmstudio`` (or ``argv``); the block must stop it.

    Stop it by a signal or by closing its stdin. Its stderr (the logs) goes to the file ``stderr``.
    """
    with stderr.open("ab") as log:
        proc = await trio.lowlevel.open_process(
            list(argv),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
            env=dict(env),
        )
    server = ServerProcess(proc)
    try:
        async with trio.open_nursery() as nursery:
            assert proc.stdout is not None
            nursery.start_soon(server._read, proc.stdout)
            await server.initialize()
            yield server
            await proc.wait()
    finally:
        await _reap(proc, proc.stdin, proc.stdout)


async def _reap(proc: trio.Process, *streams: trio.abc.AsyncResource | None) -> None:
    """Kill ``proc`` if it still runs, wait for it and close our ends of its pipes (shielded)."""
    with trio.CancelScope(shield=True):
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        for stream in streams:
            if stream is not None:
                await stream.aclose()


_HTTP_ACCEPT = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


class HttpServerProcess:
    """A running ``lmsorch serve --http``: one MCP session over raw JSON-RPC POSTs."""

    def __init__(self, proc: trio.Process, url: str, http: httpx.AsyncClient) -> None:
        self.proc = proc
        self.url = url
        self.replies: dict[int, dict[str, Any]] = {}
        self._http = http
        self._headers = dict(_HTTP_ACCEPT)
        self._ids = itertools.count(1)

    async def post(self, message: Mapping[str, Any]) -> httpx.Response:
        """POST one JSON-RPC message in the session."""
        return await self._http.post(self.url, json=dict(message), headers=self._headers)

    async def call_tool(self, name: str, arguments: Mapping[str, Any]) -> int:
        """Run a ``tools/call`` to its answer (kept in :attr:`replies`); return its id."""
        ident = next(self._ids)
        params = {"name": name, "arguments": dict(arguments)}
        response = await self.post(
            {"jsonrpc": "2.0", "id": ident, "method": "tools/call", "params": params}
        )
        for message in _messages(response):
            if message.get("id") == ident:
                self.replies[ident] = message
        return ident

    async def initialize(self) -> None:
        """The MCP handshake; later requests carry the session id."""
        hello = await self.post(
            {
                "jsonrpc": "2.0",
                "id": 0,
                "method": "initialize",
                "params": {
                    "protocolVersion": "2025-11-25",
                    "capabilities": {},
                    "clientInfo": {"name": "reliability", "version": "0"},
                },
            }
        )
        hello.raise_for_status()
        self._headers["mcp-session-id"] = hello.headers["mcp-session-id"]
        self._headers["mcp-protocol-version"] = "2025-11-25"
        await self.post({"jsonrpc": "2.0", "method": "notifications/initialized"})


def _messages(response: httpx.Response) -> list[dict[str, Any]]:
    """The JSON-RPC messages of an answer, whether JSON or an SSE stream."""
    if response.headers.get("content-type", "").startswith("application/json"):
        return [response.json()]
    return [
        json.loads(line[len("data:") :])
        for line in response.text.splitlines()
        if line.startswith("data:") and line[len("data:") :].strip()
    ]


async def _tee_until_url(
    stream: trio.abc.ReceiveStream,
    log: Path,
    *,
    task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Copy the server's stderr to ``log``; report the URL it prints once it serves."""
    seen = b""
    started = False
    with log.open("ab") as sink:
        async for chunk in stream:
            sink.write(chunk)
            sink.flush()
            if not started:
                seen += chunk
                found = re.search(rb"MCP over HTTP at (\S+)", seen)
                if found:
                    started = True
                    task_status.started(found.group(1).decode())
    if not started:
        raise AssertionError(f"lmsorch serve --http exited before serving: {seen.decode()}")


@asynccontextmanager
async def lmsorch_serve_http(
    env: Mapping[str, str], stderr: Path
) -> AsyncIterator[HttpServerProcess]:
    """Run ``lmsorch serve --backend lmstudio --http 127.0.0.1:0``; the block must stop it."""
    proc = await trio.lowlevel.open_process(
        [LMSORCH, "serve", "--backend", "lmstudio", "--http", "127.0.0.1:0"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=dict(env),
    )
    try:
        async with (
            httpx.AsyncClient(trust_env=False, timeout=None) as http,
            trio.open_nursery() as nursery,
        ):
            assert proc.stderr is not None
            url = await nursery.start(_tee_until_url, proc.stderr, stderr)
            server = HttpServerProcess(proc, url, http)
            await server.initialize()
            yield server
            await proc.wait()
    finally:
        await _reap(proc, proc.stderr)
