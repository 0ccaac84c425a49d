"""The toolbox: open sessions to MCP servers and call their tools safely.

:func:`open_toolbox` starts every server concurrently under one nursery (stdio
servers as child processes, HTTP servers over streamable HTTP), lists their
tools and yields a :class:`Toolbox`. Leaving the block, by success, error or
cancellation, stops every server: the MCP SDK's stdio transport closes the
child's stdin, waits 2 s, then terminates and kills its whole process group.

Starting is bounded by ``start_timeout_s`` (spawn + initialize + list tools); a
server that cannot be spawned, exits at once, or hangs raises
:class:`McpServerFailed` with the last lines of its stderr. Child stderr never
reaches our stdout (the MCP wire in stdio mode): it goes into a pipe we drain,
keeping only a bounded tail for error messages.

:meth:`Toolbox.call` never raises for a tool-level problem; it answers with a
:class:`ToolResult` the loop hands back to the model (see its docstring).
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2
import mcp_types as types
import msgspec
import trio
from mcp import Client, StdioServerParameters
from mcp.client.session import ClientRequestContext
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.exceptions import MCPError

from orchestrator.agent.discovery import ServerSpec
from orchestrator.agent.errors import AgentError, McpServerFailed, PathNotAllowed
from orchestrator.agent.safety import check_arguments, check_path
from orchestrator.agent.schema_bridge import (
    BridgedTool,
    exposed_names,
    parse_arguments,
    schema_errors,
)
from orchestrator.agent.settings import AgentSettings
from orchestrator.errors import excerpt
from orchestrator.identity import SERVER_NAME
from orchestrator.inference.responses_types import ResponsesTool
from orchestrator.inference.types import Tool
from orchestrator.logs import REDACTED, register_secret

__all__ = ["ToolResult", "Toolbox", "open_toolbox"]

STDERR_TAIL_BYTES = 8192
MAX_TOOLS_PER_SERVER = 512
HTTP_CLOSE_TIMEOUT_S = 3.0
"""How long closing an HTTP session (its DELETE request) may take before it is abandoned."""
_LIST_PAGES = 32
_STDERR_IN_MESSAGE = 600
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_MIN_SECRET_CHARS = 4
_MIN_LOGGED_SECRET_CHARS = 8


class ToolResult(msgspec.Struct, frozen=True, kw_only=True):
    """What one tool call produced, as text for the model.

    Attributes:
        text: the result (or the problem, when ``is_error``), at most
            ``max_result_chars`` plus a short note when cut.
        is_error: the call failed or was refused; ``text`` says why.
        truncated: ``text`` was cut to ``max_result_chars``.
    """

    text: str
    is_error: bool = False
    truncated: bool = False


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


def _scrubbed(text: str, secrets: Sequence[str]) -> str:
    """``text`` with every secret replaced by the logs' ``[REDACTED]`` marker."""
    for secret in secrets:
        text = text.replace(secret, REDACTED)
    return text


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
        text = _scrubbed(self.data.decode("utf-8", errors="replace"), self._secrets)
        lines = text.strip().splitlines()
        if self.trimmed:
            lines = lines[1:]  # may start inside a secret the scrub could not recognise
        tail = " | ".join(line.strip() for line in lines[-8:] if line.strip())
        return tail[-_STDERR_IN_MESSAGE:]


def _first(exc: BaseException) -> BaseException:
    """The first exception inside (nested) exception groups."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


def _describe(exc: BaseException, secrets: Sequence[str] = ()) -> str:
    """One line for an exception (secrets scrubbed), looking inside exception groups."""
    exc = _first(exc)
    if isinstance(exc, MCPError):
        return excerpt(_scrubbed(exc.message or "MCP error", secrets), 300)
    text = str(exc) or type(exc).__name__
    return excerpt(_scrubbed(f"{type(exc).__name__}: {text}", secrets), 300)


def _leaf(group: BaseExceptionGroup[Any]) -> BaseException:
    """The exception to raise for ``group``: the first one that is not a cancellation."""
    leaves: list[BaseException] = []

    def walk(exc: BaseException) -> None:
        if isinstance(exc, BaseExceptionGroup):
            for inner in exc.exceptions:
                walk(inner)
        else:
            leaves.append(exc)

    walk(group)
    real = [e for e in leaves if not isinstance(e, trio.Cancelled)]
    return (real or leaves or [group])[0]


def _content_text(block: Any) -> str:
    """One content block as text; binary blocks become a short placeholder."""
    if isinstance(block, types.TextContent):
        return block.text
    if isinstance(block, types.ImageContent | types.AudioContent):
        kind = "image" if isinstance(block, types.ImageContent) else "audio"
        return f"[{kind}: {block.mime_type}, {len(block.data)} base64 characters, not shown]"
    if isinstance(block, types.ResourceLink):
        return f"[resource link: {block.uri} ({block.name})]"
    if isinstance(block, types.EmbeddedResource):
        res = block.resource
        if isinstance(res, types.TextResourceContents):
            return f"[resource {res.uri}]\n{res.text}"
        return f"[resource {res.uri}: {res.mime_type or 'binary'}, not shown]"
    return f"[{getattr(block, 'type', type(block).__name__)} content, not shown]"


def _result_parts(result: types.CallToolResult) -> list[str]:
    """The result's content blocks as text, or its structured content when it has no text."""
    parts = [p for p in map(_content_text, result.content) if p]
    if not parts and result.structured_content is not None:
        parts = [json.dumps(result.structured_content, ensure_ascii=False, default=str)]
    return parts


def _without_partial_secret(text: str, secrets: Sequence[str]) -> str:
    """``text`` less any start of a secret it ends with (a cut may have split one)."""
    cut = 0
    for secret in secrets:
        for k in range(len(secret) - 1, cut, -1):  # only a longer start than found so far
            if text.endswith(secret[:k]):
                cut = k
                break
    return text[: len(text) - cut]


def _bounded(
    parts: Sequence[str],
    limit: int,
    *,
    lead: str = "",
    is_error: bool = False,
    secrets: Sequence[str] = (),
) -> ToolResult:
    """``lead`` and ``parts`` (joined by newlines) as a result of at most ``limit`` characters.

    Only what is kept is copied: the pieces are sliced before they are joined, so
    a 20 MB result costs microseconds here, not a join and a scan of all of it.
    Then control characters (NUL, ESC ...: they help no model and break some
    templates) are dropped, and an error is scrubbed of ``secrets``, a cut never
    leaving the start of one behind. A cut result ends with a note giving the
    full length.
    """
    total = len(lead) + sum(map(len, parts)) + max(len(parts) - 1, 0)
    truncated = total > limit
    if truncated:
        kept, room = [], limit - len(lead)
        for part in parts:
            if room <= 0:
                break
            kept.append(part[:room])
            room -= len(kept[-1]) + 1
        text = (lead + "\n".join(kept))[:limit]
    else:
        text = lead + "\n".join(parts)
    text = _CONTROL.sub("", text)
    if is_error:
        text = _scrubbed(text, secrets)
        if truncated:
            text = _without_partial_secret(text, secrets)
    if not truncated:
        return ToolResult(text=text, is_error=is_error)
    note = (
        f"\n[result cut: showing {limit} of {total} characters; "
        "ask for a smaller part if you need the rest]"
    )
    return ToolResult(text=text + note, is_error=is_error, truncated=True)


@dataclass
class _Session:
    """One open server: its client and its tools."""

    spec: ServerSpec
    client: Client
    cwd: Path
    tools: list[types.Tool]
    stderr: _StderrTail | None
    secrets: tuple[str, ...] = ()
    dead: str | None = None


@dataclass
class Toolbox:
    """The tools of the open MCP servers, ready to call. Built by :func:`open_toolbox`."""

    settings: AgentSettings
    roots: tuple[Path, ...]
    sessions: dict[str, _Session]
    skipped: dict[str, str] = field(default_factory=dict)
    """Servers left out because they failed to start (``skip_failed``), with the reason."""
    tools: dict[str, BridgedTool] = field(default_factory=dict)

    def __post_init__(self) -> None:
        pairs = [(s, t) for s, sess in self.sessions.items() for t in sess.tools]
        names = exposed_names(((s, t.name) for s, t in pairs), namespaced=len(self.sessions) > 1)
        for name, (server, tool) in zip(names, pairs, strict=True):
            self.tools[name] = BridgedTool.build(
                name=name,
                server=server,
                remote_name=tool.name,
                description=tool.description or tool.title,
                schema=tool.input_schema,
            )

    @property
    def servers(self) -> tuple[str, ...]:
        """Names of the open servers."""
        return tuple(self.sessions)

    def tool_names(self) -> tuple[str, ...]:
        """Function names shown to the model (``server__tool`` when several servers are open)."""
        return tuple(self.tools)

    def chat_tools(self) -> list[Tool]:
        """Every tool in the chat-completions (nested ``function``) form."""
        return [t.chat_tool() for t in self.tools.values()]

    def responses_tools(self) -> list[ResponsesTool]:
        """Every tool in the Responses API (flat) form."""
        return [t.responses_tool() for t in self.tools.values()]

    async def call(self, name: str, arguments: str) -> ToolResult:
        """Call the tool the model named with the raw JSON ``arguments`` it produced.

        Never raises for a tool-level problem; the result says what went wrong
        with ``is_error=True``: an unknown tool (the known names are listed),
        arguments that are not JSON or do not match the tool's schema (a
        correction request with the schema), a path argument outside the roots,
        a call slower than ``call_timeout_s``, a server error or an ``isError``
        result. A result longer than ``max_result_chars`` is cut, with a note.

        Raises:
            McpServerFailed: the server's connection is gone (its process died);
                callers usually report it to the model like any tool error.
        """
        tool = self.tools.get(name)
        if tool is None:
            known = ", ".join(self.tools) or "none"
            return ToolResult(
                text=f"Unknown tool {excerpt(repr(name), 80)}. Available tools: {known}",
                is_error=True,
            )
        args, problem = parse_arguments(arguments)
        if args is None:
            return ToolResult(text=tool.correction(problem or "invalid"), is_error=True)
        errors = schema_errors(tool.validator, args)
        if errors:
            return ToolResult(text=tool.correction("; ".join(errors)), is_error=True)
        session = self.sessions[tool.server]
        try:
            check_arguments(args, self.roots, base=session.cwd)
        except PathNotAllowed as exc:
            return ToolResult(text=str(exc), is_error=True)
        if session.dead is not None:
            raise McpServerFailed(tool.server, session.dead)
        limit = self.settings.max_result_chars
        with trio.move_on_after(self.settings.call_timeout_s) as scope:
            try:
                result = await session.client.call_tool(tool.remote_name, args)
            except MCPError as exc:
                if exc.code == types.CONNECTION_CLOSED:
                    session.dead = self._gone_reason(session)
                    raise McpServerFailed(tool.server, session.dead) from exc
                failed = _describe(exc, session.secrets)
                return _bounded([f"Tool {name} failed: {failed}"], limit, is_error=True)
            except (trio.ClosedResourceError, trio.BrokenResourceError) as exc:
                session.dead = self._gone_reason(session)
                raise McpServerFailed(tool.server, session.dead) from exc
            except Exception as exc:  # noqa: BLE001 (a foreign server's malformed answer)
                return _bounded(
                    [f"Tool {name} returned a malformed result: {_describe(exc, session.secrets)}"],
                    limit,
                    is_error=True,
                )
        if scope.cancelled_caught:
            return ToolResult(
                text=f"Tool {name} did not answer within {self.settings.call_timeout_s:g} s "
                "and was cancelled; try smaller input or another approach",
                is_error=True,
            )
        parts = _result_parts(result)
        if result.is_error:
            return _bounded(
                parts or ["no details"],
                limit,
                lead=f"Tool {name} reported an error: ",
                is_error=True,
                secrets=session.secrets,
            )
        return _bounded(parts, limit)

    @staticmethod
    def _gone_reason(session: _Session) -> str:
        tail = session.stderr.text() if session.stderr is not None else ""
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


def _server_cwd(spec: ServerSpec, roots: Sequence[Path]) -> Path:
    """Where a stdio server runs: its ``cwd`` (checked against the roots), else the first root."""
    if spec.cwd is None:
        return roots[0]
    path = check_path(spec.cwd, roots, base=roots[0])
    if not path.is_dir():
        raise McpServerFailed(spec.name, f"working directory {spec.cwd} is not a directory")
    return path


async def _run_server(
    spec: ServerSpec,
    settings: AgentSettings,
    roots: tuple[Path, ...],
    stop: trio.Event,
    *,
    task_status: trio.TaskStatus[_Session],
) -> None:
    """Open one server, report its session, and keep it open until ``stop`` is set."""
    cwd = _server_cwd(spec, roots) if spec.transport == "stdio" else roots[0]
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
                        task_status.started(_Session(spec, client, cwd, tools, stderr, secrets))
                        await stop.wait()
                except AgentError:
                    raise
                except Exception as exc:
                    if started:
                        return  # the connection broke at close; the process is stopped anyway
                    reason = _describe(exc, secrets)
                    cause = _first(exc)
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
        leaf = _leaf(group)
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
                hint = (
                    " - check the headers in mcp.json" if response.status_code in (401, 403) else ""
                )
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


@asynccontextmanager
async def open_toolbox(
    specs: Sequence[ServerSpec], settings: AgentSettings, *, skip_failed: bool = False
) -> AsyncIterator[Toolbox]:
    """Open every server in ``specs`` concurrently and yield their tools as a :class:`Toolbox`.

    Every server is stopped when the block is left, however it is left.

    Args:
        specs: the servers to open.
        settings: limits and roots.
        skip_failed: leave out a server that fails to start (or whose ``cwd`` is
            outside the roots), with the reason in :attr:`Toolbox.skipped`,
            instead of failing; it is still an error when none starts.

    Raises:
        McpServerFailed: a server failed to start, initialize or list its tools
            within ``start_timeout_s`` (the others are stopped too); with
            ``skip_failed``, every server did.
        PathNotAllowed: a stdio server's ``cwd`` is outside the roots.
        ValueError: ``specs`` is empty or names a server twice.
    """
    names = [s.name for s in specs]
    if not names:
        raise ValueError("open_toolbox needs at least one MCP server")
    if len(set(names)) != len(names):
        raise ValueError(f"MCP servers named more than once: {names}")
    roots = settings.resolved_roots()
    skipped: dict[str, str] = {}
    for spec in specs:  # refuse before anything is spawned
        if spec.transport == "stdio":
            try:
                _server_cwd(spec, roots)
            except PathNotAllowed as exc:
                if not skip_failed:
                    raise
                skipped[spec.name] = str(exc)
    stop = trio.Event()
    sessions: dict[str, _Session] = {}
    try:
        async with trio.open_nursery() as nursery:

            async def start(spec: ServerSpec) -> None:
                try:
                    sessions[spec.name] = await nursery.start(
                        _run_server, spec, settings, roots, stop
                    )
                except McpServerFailed as exc:
                    if not skip_failed:
                        raise
                    skipped[spec.name] = exc.reason

            try:
                async with trio.open_nursery() as starting:
                    for spec in specs:
                        if spec.name not in skipped:
                            starting.start_soon(start, spec)
                if not sessions:
                    reasons = "; ".join(f"{n}: {r}" for n, r in skipped.items())
                    raise McpServerFailed(", ".join(skipped), f"none of them started ({reasons})")
                opened = {n: sessions[n] for n in names if n in sessions}
                yield Toolbox(settings, roots, opened, skipped)
            finally:
                stop.set()
    except BaseExceptionGroup as group:
        # Our tasks raise only McpServerFailed: give it (or the caller's own error) back bare.
        leaf = _leaf(group)
        raise leaf from leaf.__cause__
