"""A real ``lmsorch serve`` process driven with raw JSON-RPC over its stdio.

Raw rather than through the SDK's client so a test controls exactly when the
process gets SIGTERM or SIGKILL, mid-call, and can wait for its exit.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio

from tests.fakes import Simulator
from tests.fakes.fixtures import install_fake_lms

__all__ = ["LMSORCH", "ServerProcess", "lmsorch_serve", "server_env", "simulator_server_env"]

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
        with trio.CancelScope(shield=True):
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
            for stream in (proc.stdin, proc.stdout):
                if stream is not None:
                    await stream.aclose()
