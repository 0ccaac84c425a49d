"""The toolbox: open sessions to MCP servers and call their tools safely.

:func:`open_toolbox` starts every server concurrently under one nursery, each
one a child session (:mod:`.sessions`: its process or HTTP connection, its
stderr, its start-up limit), and yields a :class:`Toolbox`. Leaving the block,
by success, error or cancellation, stops every server. :func:`probe` opens one
server only to see whether it starts.

:meth:`Toolbox.call` never raises for a tool-level problem; it answers with a
:class:`ToolResult` (shaped by :mod:`.tool_results`) the loop hands back to the
model (see its docstring).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import mcp_types as types
import trio
from mcp.shared.exceptions import MCPError

from orchestrator.agent.discovery import ServerSpec
from orchestrator.agent.errors import AgentError, McpServerFailed, PathNotAllowed
from orchestrator.agent.safety import check_arguments
from orchestrator.agent.schema_bridge import (
    BridgedTool,
    exposed_names,
    parse_arguments,
    schema_errors,
)
from orchestrator.agent.sessions import ServerSession, run_server, server_cwd
from orchestrator.agent.settings import AgentSettings
from orchestrator.agent.tool_results import ToolResult, bounded, describe, result_parts
from orchestrator.errors import excerpt
from orchestrator.exception_groups import unwrap_group
from orchestrator.inference.responses_types import ResponsesTool
from orchestrator.inference.types import Tool

__all__ = ["ToolResult", "Toolbox", "open_toolbox", "probe"]


@dataclass
class Toolbox:
    """The tools of the open MCP servers, ready to call. Built by :func:`open_toolbox`."""

    settings: AgentSettings
    roots: tuple[Path, ...]
    sessions: dict[str, ServerSession]
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
                    session.dead = session.gone_reason()
                    raise McpServerFailed(tool.server, session.dead) from exc
                failed = describe(exc, session.secrets)
                return bounded([f"Tool {name} failed: {failed}"], limit, is_error=True)
            except (trio.ClosedResourceError, trio.BrokenResourceError) as exc:
                session.dead = session.gone_reason()
                raise McpServerFailed(tool.server, session.dead) from exc
            except Exception as exc:  # noqa: BLE001 (a foreign server's malformed answer)
                return bounded(
                    [f"Tool {name} returned a malformed result: {describe(exc, session.secrets)}"],
                    limit,
                    is_error=True,
                )
        if scope.cancelled_caught:
            return ToolResult(
                text=f"Tool {name} did not answer within {self.settings.call_timeout_s:g} s "
                "and was cancelled; try smaller input or another approach",
                is_error=True,
            )
        parts = result_parts(result)
        if result.is_error:
            return bounded(
                parts or ["no details"],
                limit,
                lead=f"Tool {name} reported an error: ",
                is_error=True,
                secrets=session.secrets,
            )
        return bounded(parts, limit)


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
                server_cwd(spec, roots)
            except PathNotAllowed as exc:
                if not skip_failed:
                    raise
                skipped[spec.name] = str(exc)
    stop = trio.Event()
    sessions: dict[str, ServerSession] = {}
    try:
        async with trio.open_nursery() as nursery:

            async def start(spec: ServerSpec) -> None:
                try:
                    sessions[spec.name] = await nursery.start(
                        run_server, spec, settings, roots, stop
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
        leaf = unwrap_group(group, prefer_not=trio.Cancelled)
        raise leaf from leaf.__cause__


async def probe(spec: ServerSpec, settings: AgentSettings) -> str | None:
    """Try to start ``spec`` and list its tools: ``None`` when that works, else the reason.

    Bounded by ``settings.start_timeout_s`` (plus the few seconds stopping a hung
    server takes); whatever was started is stopped again.
    """
    try:
        async with open_toolbox([spec], settings):
            return None
    except AgentError as exc:
        return str(exc)
