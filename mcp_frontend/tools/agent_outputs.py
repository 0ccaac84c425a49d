"""What the agent tools return: TypedDicts, so each has an output schema.

Built explicitly from the agent layer's Structs (see :mod:`mcp_frontend.tools.io_types`
for why), so no field reaches a schema unseen, and no secret (a server's
``env`` or ``headers`` values) can.
"""

from __future__ import annotations

from typing import Any, NotRequired

from typing_extensions import TypedDict

from mcp_frontend.tools.chat import split_reasoning
from orchestrator.agent import AgentResult, ToolCallTrace

__all__ = [
    "AgentOut",
    "AgentTraceOut",
    "McpListOut",
    "McpServerOut",
    "ToolCallOut",
    "agent_out",
    "server_out",
]


class ToolCallOut(TypedDict):
    """One tool call the model made (no arguments or output: the trace stays small)."""

    round: int
    name: str
    ok: bool
    duration_s: float
    error: NotRequired[str]
    truncated: NotRequired[bool]


class AgentTraceOut(TypedDict):
    """How the run went; ``stop_reason`` says why it ended (see docs/agents.md)."""

    model: str
    api: str
    servers: list[str]
    rounds: int
    tool_calls: list[ToolCallOut]
    errors: list[str]
    stop_reason: str
    finish_reason: str | None
    elapsed_s: float
    dropped_outputs: int


class AgentOut(TypedDict):
    """The result of an autonomous run."""

    answer: str
    reasoning: str | None
    success: bool
    trace: AgentTraceOut


class McpServerOut(TypedDict):
    """One configured MCP server; env and header names only, never their values."""

    name: str
    transport: str
    command: NotRequired[str | None]
    args: NotRequired[list[str]]
    cwd: NotRequired[str]
    env: NotRequired[list[str]]
    url: NotRequired[str]
    headers: NotRequired[list[str]]
    reachable: bool | None
    reason: str | None


class McpListOut(TypedDict):
    """The MCP servers agents may use, and the configuration they come from."""

    source: str | None
    servers: list[McpServerOut]
    invalid: dict[str, str]


def _call_out(call: ToolCallTrace) -> ToolCallOut:
    out = ToolCallOut(round=call.round, name=call.name, ok=call.ok, duration_s=call.duration_s)
    if call.error is not None:
        out["error"] = call.error
    if call.truncated:
        out["truncated"] = True
    return out


def agent_out(result: AgentResult) -> AgentOut:
    """Convert a run's result for the tool output (a leading ``<think>`` block is reasoning)."""
    t = result.trace
    answer, reasoning = split_reasoning(result.answer, result.reasoning)
    return AgentOut(
        answer=answer,
        reasoning=reasoning,
        success=t.success,
        trace=AgentTraceOut(
            model=t.model,
            api=t.api,
            servers=list(t.servers),
            rounds=t.rounds,
            tool_calls=[_call_out(c) for c in t.tool_calls],
            errors=list(t.errors),
            stop_reason=t.stop_reason,
            finish_reason=t.finish_reason,
            elapsed_s=t.elapsed_s,
            dropped_outputs=t.dropped_outputs,
        ),
    )


_PUBLIC_KEYS = ("command", "args", "cwd", "env", "url", "headers")


def server_out(public: dict[str, object], reason: str | None, *, probed: bool) -> McpServerOut:
    """One server for ``list_available_mcps``, from ``ServerSpec.public()`` and a probe."""
    out = McpServerOut(
        name=str(public["name"]),
        transport=str(public["transport"]),
        reachable=(reason is None) if probed else None,
        reason=reason,
    )
    extra: dict[str, Any] = {k: public[k] for k in _PUBLIC_KEYS if k in public}
    out.update(extra)  # type: ignore[typeddict-item]  # keys checked against _PUBLIC_KEYS
    return out
