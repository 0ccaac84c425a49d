"""Child sessions: one MCP server each, started, connected and stopped again.

:func:`run_server` starts one server (a stdio server as a child process, an HTTP
server over streamable HTTP), reports its :class:`ServerSession` once its tools
are listed, and keeps it open until told to stop; the toolbox (:mod:`.toolbox`)
runs one per server. Leaving, by success, error or cancellation, stops the
server: the MCP SDK's stdio transport closes the child's stdin, waits 2 s, then
terminates and kills its whole process group.

Starting is bounded by ``start_timeout_s`` (spawn + initialize + list tools); a
server that cannot be spawned, exits at once, or hangs raises
:class:`McpServerFailed` with the last lines of its stderr. Child stderr never
reaches our stdout (the MCP wire in stdio mode): it goes into a pipe we drain,
keeping only a bounded tail for error messages.
"""

from __future__ import annotations

import math
import os
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import mcp_types as types
import trio
from mcp import Client, StdioServerParameters
from mcp.client.session import ClientRequestContext
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.exceptions import MCPError

from orchestrator.agent.discovery import ServerSpec
from orchestrator.agent.errors import AgentError, McpServerFailed
from orchestrator.agent.safety import check_path
from orchestrator.agent.settings import AgentSettings
from orchestrator.agent.tool_results import describe, scrubbed
from orchestrator.exception_groups import unwrap_group
from orchestrator.identity import SERVER_NAME
from orchestrator.logs import register_secret

__all__ = [
    "HTTP_CLOSE_TIMEOUT_S",
    "MAX_TOOLS_PER_SERVER",
    "STDERR_TAIL_BYTES",
    "ServerSession",
    "run_server",
    "server_cwd",
]

STDERR_TAIL_BYTES = 8192
MAX_TOOLS_PER_SERVER = 512
HTTP_CLOSE_TIMEOUT_S = 3.0
"""How long closing an HTTP session (its DELETE request) may take before it is abandoned."""
_LIST_PAGES = 32
_STDERR_IN_MESSAGE = 600
_MIN_SECRET_CHARS = 4
_MIN_LOGGED_SECRET_CHARS = 8


def _secrets_of(spec: ServerSpec) -> tuple[str, ...]:
    """The values of ``spec.env`` and ``spec.headers`` (4+ characters), longest first.

    A header's credential after its scheme (``Bearer <token>``) counts on its own
    too. Those of 8+ characters are also registered with
    :func:`orchestrator.logs.register_secret`, so log lines never show them; the
    registration is process-wide, and shorter values (``true``, ``1``, ``info``)
    would blank the same words in every log line.
    """
    found = set(spec.env.values())
    for value in spec.headers.values():
        found.add(value)
        found.update(value.split()[1:])
    secrets = sorted((s for s in found if len(s) >= _MIN_SECRET_CHARS), key=len, reverse=True)
    for secret in secrets:
        if len(secret) >= _MIN_LOGGED_SECRET_CHARS:
            register_secret(secret)
    return tuple(secrets)


class _StderrTail:
    """Drain a child's stderr pipe, keeping the last :data:`STDERR_TAIL_BYTES` bytes."""

    def __init__(self, secrets: Sequence[str] = ()) -> None:
        self.data = bytearray()
        self.trimmed = False
        self._secrets = tuple(secrets)
        read_fd, write_fd = os.pipe()
        self._read = trio.lowlevel.FdStream(read_fd)
        # A text file object because the SDK types errlog as TextIO; only its fd is used.
        self.child_end = open(write_fd, "w", closefd=True)  # noqa: SIM115 (closed in release)
        self.done = trio.Event()

    async def drain(self) -> None:
        try:
            async with self._read:
                while chunk := await self._read.receive_some(65536):
                    self.data.extend(chunk)
                    if len(self.data) > STDERR_TAIL_BYTES:
                        self.trimmed = True
                        del self.data[:-STDERR_TAIL_BYTES]
        except (trio.ClosedResourceError, trio.BrokenResourceError, OSError):
            pass
        finally:
            self.done.set()

    def release(self) -> None:
        """Close our copy of the write end, so the drain ends when the child's copy closes."""
        if not self.child_end.closed:
            self.child_end.close()

    def text(self) -> str:
        """The last lines, secrets scrubbed (before any cut, so no part of one is left)."""
        text = scrubbed(self.data.decode("utf-8", errors="replace"), self._secrets)
        lines = text.strip().splitlines()
        if self.trimmed:
            lines = lines[1:]  # may start inside a secret the scrub could not recognise
        tail = " | ".join(line.strip() for line in lines[-8:] if line.strip())
        return tail[-_STDERR_IN_MESSAGE:]


@dataclass
class ServerSession:
    """One open server: its client and its tools."""

    spec: ServerSpec
    client: Client
    cwd: Path
    tools: list[types.Tool]
    stderr: _StderrTail | None
    secrets: tuple[str, ...] = ()
    dead: str | None = None

    def gone_reason(self) -> str:
        """Why the connection is gone, with the tail of the server's stderr."""
        tail = self.stderr.text() if self.stderr is not None else ""
        return "the connection closed (the server exited)" + (f"; stderr: {tail}" if tail else "")


def _roots_callback(roots: Sequence[Path]) -> Any:
    """Answer a server's ``roots/list`` with our roots (the filesystem server honours them)."""

    async def list_roots(_context: ClientRequestContext) -> types.ListRootsResult:
        return types.ListRootsResult(
            roots=[types.Root(uri=root.as_uri(), name=root.name or str(root)) for root in roots]  # type: ignore[arg-type]
        )

    return list_roots


async def _list_tools(client: Client) -> list[types.Tool]:
    tools: list[types.Tool] = []
    cursor: str | None = None
    for _ in range(_LIST_PAGES):
        page = await client.list_tools(cursor=cursor)
        tools.extend(page.tools)
        cursor = page.next_cursor
        if cursor is None or len(tools) >= MAX_TOOLS_PER_SERVER:
            break
    return tools[:MAX_TOOLS_PER_SERVER]


def server_cwd(spec: ServerSpec, roots: Sequence[Path]) -> Path:
    """Where a stdio server runs: its ``cwd`` (checked against the roots), else the first root."""
    if spec.cwd is None:
        return roots[0]
    path = check_path(spec.cwd, roots, base=roots[0])
    if not path.is_dir():
        raise McpServerFailed(spec.name, f"working directory {spec.cwd} is not a directory")
    return path


async def run_server(
    spec: ServerSpec,
    settings: AgentSettings,
    roots: tuple[Path, ...],
    stop: trio.Event,
    *,
    task_status: trio.TaskStatus[ServerSession],
) -> None:
    """Open one server, report its session, and keep it open until ``stop`` is set.

    Run it with ``nursery.start``: the session is what ``start`` returns.

    Raises:
        McpServerFailed: the server did not spawn, initialize and list its tools
            within ``settings.start_timeout_s``, or it is this orchestrator.
        PathNotAllowed: a stdio server's ``cwd`` is outside ``roots``.
    """
    cwd = server_cwd(spec, roots) if spec.transport == "stdio" else roots[0]
    secrets = _secrets_of(spec)
    stderr = _StderrTail(secrets) if spec.transport == "stdio" else None
    http_errors: list[str] = []
    started = False
    try:
        async with trio.open_nursery() as nursery:
            if stderr is not None:
                nursery.start_soon(stderr.drain)
            deadline = trio.current_time() + settings.start_timeout_s
            with trio.CancelScope(deadline=deadline) as start_scope:
                try:
                    async with _connect(spec, cwd, roots, stderr, http_errors) as client:
                        if stderr is not None:
                            stderr.release()  # the child holds its own copy now
                        _refuse_self(spec, client)
                        tools = await _list_tools(client)
                        start_scope.deadline = math.inf
                        started = True
                        task_status.started(
                            ServerSession(spec, client, cwd, tools, stderr, secrets)
                        )
                        await stop.wait()
                except AgentError:
                    raise
                except Exception as exc:
                    if started:
                        return  # the connection broke at close; the process is stopped anyway
                    reason = describe(exc, secrets)
                    cause = unwrap_group(exc)
                    if isinstance(cause, MCPError) and cause.code == types.CONNECTION_CLOSED:
                        reason = "it exited or closed the connection before it was ready"
                    reason = _with_stderr(reason, stderr, http_errors)
                    raise McpServerFailed(spec.name, reason) from exc
                finally:
                    if stderr is not None:
                        stderr.release()
                        with trio.move_on_after(1):  # let the drain read the last lines
                            await stderr.done.wait()
                    nursery.cancel_scope.cancel()
            if start_scope.cancelled_caught and not started:
                raise McpServerFailed(
                    spec.name,
                    _with_stderr(
                        f"did not start, initialize and list its tools within "
                        f"{settings.start_timeout_s:g} s",
                        stderr,
                        http_errors,
                    ),
                )
    except BaseExceptionGroup as group:
        # Our tasks raise only McpServerFailed: give it (or the caller's own error) back bare.
        leaf = unwrap_group(group, prefer_not=trio.Cancelled)
        raise leaf from leaf.__cause__


def _refuse_self(spec: ServerSpec, client: Client) -> None:
    """Refuse a server that says it is this orchestrator (discovery catches only known commands).

    Raises:
        McpServerFailed: its ``serverInfo`` name is ours; the session is then closed.
    """
    info = client.server_info
    if info is not None and info.name == SERVER_NAME:
        raise McpServerFailed(
            spec.name,
            f"it is this orchestrator ({SERVER_NAME}); an agent never uses the server it runs in",
        )


def _with_stderr(reason: str, stderr: _StderrTail | None, http_errors: Sequence[str]) -> str:
    """The reason, with the last HTTP error status and the tail of the server's stderr."""
    if http_errors:
        reason = f"{reason} ({http_errors[-1]})"
    tail = stderr.text() if stderr is not None else ""
    return f"{reason}; stderr: {tail}" if tail else reason


@asynccontextmanager
async def _connect(
    spec: ServerSpec,
    cwd: Path,
    roots: Sequence[Path],
    stderr: _StderrTail | None,
    http_errors: list[str],
) -> AsyncIterator[Client]:
    """An initialized MCP client for ``spec``.

    stdio uses the initialize handshake every server speaks; HTTP negotiates
    (``auto``), because the SDK's handshake-era HTTP path leaves response
    streams unclosed (trio then warns about unfinished async generators).
    HTTP error statuses are noted in ``http_errors``: the SDK reports them
    without the status.
    """
    callback = _roots_callback(roots)
    if spec.transport == "stdio":
        assert spec.command is not None
        assert stderr is not None
        params = StdioServerParameters(
            command=spec.command, args=list(spec.args), env=dict(spec.env), cwd=cwd
        )
        transport = stdio_client(params, errlog=stderr.child_end)
        async with Client(transport, mode="legacy", list_roots_callback=callback) as client:
            yield client
    else:
        assert spec.url is not None

        async def note_status(response: httpx2.Response) -> None:
            if response.status_code >= 400:
                hint = _auth_hint(spec) if response.status_code in (401, 403) else ""
                http_errors.append(f"HTTP {response.status_code}{hint}")

        async with create_mcp_http_client(headers=dict(spec.headers)) as http:
            http.event_hooks["response"].append(note_status)
            transport = streamable_http_client(spec.url, http_client=http)
            failure: BaseException | None = None
            with trio.CancelScope() as closing:
                async with Client(transport, mode="auto", list_roots_callback=callback) as client:
                    try:
                        yield client
                    except BaseException as exc:
                        failure = exc
                        raise
                    finally:
                        # Closing sends a DELETE; a server that never answers it must
                        # not hold up the exit (the HTTP read timeout is minutes).
                        closing.deadline = trio.current_time() + HTTP_CLOSE_TIMEOUT_S
            if closing.cancelled_caught and failure is not None:
                raise failure  # the cut-short close must not swallow the block's own error


def _auth_hint(spec: ServerSpec) -> str:
    # LM Studio keeps the OAuth tokens of the servers it signs in to (an "auth" object,
    # or a url-only entry: docs 4_integrations/1_mcp-remote); they are not in mcp.json.
    if spec.oauth or not spec.headers:
        return (
            " - the server wants credentials the entry does not carry; if LM Studio signs in"
            " to it for you (OAuth), LM Studio keeps that token and this agent cannot use it:"
            " add an Authorization header to the entry, or use the server from LM Studio"
        )
    return " - check the headers in mcp.json"
