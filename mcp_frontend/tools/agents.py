"""Autonomous-agent tools: a local model works on a task with other MCP servers' tools.

Thin on purpose: the servers come from the registry (``mcp.json``, allow and
deny lists), the toolbox opens them, and :func:`~orchestrator.agent.loop.run_agent`
runs the bounded loop; these tools validate, wire progress, and shape the
output. Every run returns the answer with a compact trace, also when a bound
stopped it (``success`` is then false and ``trace.stop_reason`` says why).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from typing import Annotated, Any, Literal, NamedTuple

import anyio
import msgspec
import trio
from mcp.server.mcpserver import Context, MCPServer
from mcp.types import ToolAnnotations
from pydantic import Field

from mcp_frontend.checks.prompt_size import check_prompt_size
from mcp_frontend.deps import Deps
from mcp_frontend.errors import ToolError, tool_errors
from mcp_frontend.tools.agent_outputs import AgentOut, McpListOut, agent_out, server_out
from mcp_frontend.tools.inference import MaxTokens, ModelOpt, Temperature, resolve_model
from mcp_frontend.tools.progress import heartbeat
from orchestrator import UnknownModel
from orchestrator.agent import AgentSettings, McpRegistry, ServerSpec, working_roots

__all__ = ["RoundProgress", "register"]

Task = Annotated[str, Field(min_length=1, description="What the agent should do, in words.")]
McpName = Annotated[str, Field(min_length=1, max_length=200)]
Rounds = Annotated[
    int | None,
    Field(ge=1, description="Most model requests; omitted means the configured default."),
]
ApiOpt = Annotated[
    Literal["chat", "responses"],
    Field(description="Wire mode: chat completions with tools, or the stateful Responses API."),
]
Instructions = Annotated[
    str | None, Field(description="System prompt; omitted means a short default.")
]
WorkingDirectory = Annotated[
    str | list[str] | None,
    Field(
        description="Directory (or directories) the run works in, inside the configured "
        "agent roots: servers start in the first, and file paths must lie inside them. "
        "Omitted means the configured roots."
    ),
]

# The model may call any tool of the servers it is given, destructive ones included.
_AGENT = ToolAnnotations(
    read_only_hint=False, destructive_hint=True, idempotent_hint=False, open_world_hint=True
)
_LIST = ToolAnnotations(read_only_hint=True, idempotent_hint=True, open_world_hint=False)


class RoundProgress:
    """Agent progress: each round as it starts, then heartbeats while it runs.

    A round (a model request, then its tool calls) can take minutes on a local
    model; without news a client that cuts calls at a timeout gives up. A
    heartbeat repeats the round's message with the time the run has taken, at a
    progress value between this round and the next, as progress must grow.
    """

    def __init__(self, ctx: Context[Any, Any]) -> None:
        self._ctx = ctx
        self._started = time.monotonic()
        self._round, self._message = 0, "starting"
        self._total: int | None = None
        self._beats = 0

    async def _send(self, progress: float, total: float | None, message: str) -> None:
        # Best-effort: the client may have gone away.
        with contextlib.suppress(anyio.ClosedResourceError, anyio.BrokenResourceError):
            await self._ctx.report_progress(progress, total, message)

    async def report(self, round_: int, total: int, message: str) -> None:
        """The agent loop's progress callback: a round starts."""
        self._round, self._total, self._message, self._beats = round_, total, message, 0
        await self._send(round_, total, message)

    async def beat(self) -> None:
        """Say the current round goes on, with the run's elapsed time."""
        self._beats += 1
        elapsed = time.monotonic() - self._started
        step = self._round + 1 - 0.5**self._beats  # below the next round's value
        await self._send(step, self._total, f"{self._message} ({elapsed:.0f}s elapsed)")


class _Options(NamedTuple):
    """The run options every agent tool takes, in its signature's order."""

    model: str | None
    max_rounds: int | None
    api: Literal["chat", "responses"]
    max_tokens: int | None
    temperature: float | None
    instructions: str | None
    working_directory: str | list[str] | None


def register(
    mcp: MCPServer[Any], deps: Deps, *, settings: AgentSettings, registry: McpRegistry
) -> None:
    """Register the agent tools on ``mcp``."""

    async def run(
        ctx: Context[Any, Any],
        specs: Sequence[ServerSpec],
        task: str,
        opts: _Options,
        *,
        skip_failed: bool = False,
    ) -> AgentOut:
        # The loop and toolbox load on the first agent call, not at start-up.
        from orchestrator.agent import check_rounds, open_toolbox, run_agent

        model, max_rounds, api, max_tokens, temperature, instructions, workdir = opts
        check_prompt_size(deps, task, instructions)
        run_settings = settings
        with tool_errors():
            check_rounds(max_rounds, settings)
            if workdir:  # the run is confined to it: it becomes the run's roots
                dirs = [workdir] if isinstance(workdir, str) else workdir
                roots = working_roots(dirs, settings.resolved_roots())
                run_settings = msgspec.structs.replace(settings, roots=tuple(map(str, roots)))
        name = await resolve_model(deps, model)
        with tool_errors():
            # An unknown model fails here, before any MCP server is started.
            keys = [m.key for m in await deps.orch.catalog()]
            if name not in keys:
                raise UnknownModel(name, keys)
            progress = RoundProgress(ctx)
            async with (
                open_toolbox(specs, run_settings, skip_failed=skip_failed) as tools,
                heartbeat(deps.settings.progress_heartbeat_s, progress.beat),
            ):
                result = await run_agent(
                    deps.orch,
                    deps.inference.get(),
                    tools,
                    task,
                    model=name,
                    settings=run_settings,
                    api=api,
                    max_rounds=max_rounds,
                    max_tokens=max_tokens,
                    temperature=temperature,
                    instructions=instructions,
                    progress=progress.report,
                )
                result.trace.errors[:0] = [
                    f"MCP server {n!r} was left out: {reason}"
                    for n, reason in tools.skipped.items()
                ]
        return agent_out(result)

    def specs_for(names: Sequence[str]) -> list[ServerSpec]:
        if not names:
            raise ToolError("give at least one MCP server name (list_available_mcps shows them)")
        if len(set(names)) != len(names):
            raise ToolError(f"MCP server names given more than once: {sorted(names)}")
        with tool_errors():
            return [registry.get(n) for n in names]

    @mcp.tool(title="Agent with one MCP server", annotations=_AGENT)
    async def autonomous_with_mcp(
        ctx: Context[Any, Any],
        mcp_name: McpName,
        task: Task,
        model: ModelOpt = None,
        max_rounds: Rounds = None,
        api: ApiOpt = "chat",
        max_tokens: MaxTokens = None,
        temperature: Temperature = None,
        instructions: Instructions = None,
        working_directory: WorkingDirectory = None,
    ) -> AgentOut:
        """Let a local model do a task with the tools of one configured MCP server.

        The model calls the server's tools round by round until it answers; the run is
        bounded by max_rounds, a deadline and a context budget. Returns the answer, any
        reasoning, and a trace (rounds, tools called with ok/error, stop_reason).
        Progress is reported each round. list_available_mcps shows the servers.
        """
        return await run(
            ctx,
            specs_for([mcp_name]),
            task,
            _Options(
                model, max_rounds, api, max_tokens, temperature, instructions, working_directory
            ),
        )

    @mcp.tool(title="Agent with several MCP servers", annotations=_AGENT)
    async def autonomous_with_multiple_mcps(
        ctx: Context[Any, Any],
        mcp_names: Annotated[list[McpName], Field(min_length=1, max_length=20)],
        task: Task,
        model: ModelOpt = None,
        max_rounds: Rounds = None,
        api: ApiOpt = "chat",
        max_tokens: MaxTokens = None,
        temperature: Temperature = None,
        instructions: Instructions = None,
        working_directory: WorkingDirectory = None,
    ) -> AgentOut:
        """Let a local model do a task with the tools of several MCP servers at once.

        Tools are named server__tool. Every name must be a configured, allowed server
        (an unknown one is an error, never silently dropped). Otherwise as
        autonomous_with_mcp.
        """
        return await run(
            ctx,
            specs_for(mcp_names),
            task,
            _Options(
                model, max_rounds, api, max_tokens, temperature, instructions, working_directory
            ),
        )

    @mcp.tool(title="Agent with every MCP server", annotations=_AGENT)
    async def autonomous_discover_and_execute(
        ctx: Context[Any, Any],
        task: Task,
        model: ModelOpt = None,
        max_rounds: Rounds = None,
        api: ApiOpt = "chat",
        max_tokens: MaxTokens = None,
        temperature: Temperature = None,
        instructions: Instructions = None,
        working_directory: WorkingDirectory = None,
    ) -> AgentOut:
        """Let a local model do a task with every configured and allowed MCP server.

        A server that fails to start is left out (trace.errors says why); the run
        fails only if none starts. Many servers mean many tools (small models do
        better with few: prefer autonomous_with_mcp when you know which server
        fits). Otherwise as autonomous_with_mcp.
        """
        with tool_errors():
            specs = list(registry.servers().values())
        if not specs:
            raise ToolError(
                "no MCP servers are configured or allowed; list_available_mcps shows "
                "where the configuration is read from"
            )
        return await run(
            ctx,
            specs,
            task,
            _Options(
                model, max_rounds, api, max_tokens, temperature, instructions, working_directory
            ),
            skip_failed=True,
        )

    @mcp.tool(title="List MCP servers for agents", annotations=_LIST)
    async def list_available_mcps(check: bool = True) -> McpListOut:
        """List the MCP servers agents may use: name, transport, command or URL.

        With check=true (the default) each server is started briefly to see whether it
        answers (reachable, or the reason it does not). Secret values (env, headers)
        are never shown, only their names. 'invalid' lists broken entries and why.
        """
        with tool_errors():
            servers = registry.servers()
            invalid = registry.invalid()
        reasons: dict[str, str | None] = {}
        if check:
            from orchestrator.agent import probe

            async def one(spec: ServerSpec) -> None:
                reasons[spec.name] = await probe(spec, settings)

            async with trio.open_nursery() as nursery:
                for spec in servers.values():
                    nursery.start_soon(one, spec)
        source = registry.source
        return McpListOut(
            source=None if source is None else str(source),
            servers=[
                server_out(spec.public(), reasons.get(name), probed=check)
                for name, spec in sorted(servers.items())
            ],
            invalid=invalid,
        )
