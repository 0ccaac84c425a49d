"""Errors of the autonomous-agent layer (discovery, toolbox, safety, loop).

All subclass :class:`orchestrator.errors.OrchestratorError`::

    AgentError
    ├── McpConfigError     # missing or broken mcp.json, an undefined ${VAR}, a bad entry
    ├── UnknownMcpServer   # .name, .available
    ├── McpServerFailed    # .server, .reason: start, initialize or list_tools failed or timed out
    └── PathNotAllowed     # .path, .roots: outside the roots, or a credentials location
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from orchestrator.errors import OrchestratorError, excerpt

__all__ = ["AgentError", "McpConfigError", "McpServerFailed", "PathNotAllowed", "UnknownMcpServer"]


class AgentError(OrchestratorError):
    """Base of the agent layer's errors."""


class McpConfigError(AgentError):
    """The MCP server configuration (``mcp.json``) is missing, unreadable or malformed."""


class UnknownMcpServer(AgentError):
    """No usable MCP server has this name. ``available`` lists the ones that do exist."""

    def __init__(self, name: str, available: Iterable[str], *, hint: str | None = None) -> None:
        self.name = name
        self.available = tuple(sorted(available))
        shown = ", ".join(self.available) or "none"
        extra = f"; {hint}" if hint else ""
        super().__init__(f"unknown MCP server {name!r}; available servers: {shown}{extra}")


class McpServerFailed(AgentError):
    """An MCP server failed to start, initialize or list its tools (or timed out doing so)."""

    def __init__(self, server: str, reason: str) -> None:
        self.server = server
        self.reason = reason
        super().__init__(f"MCP server {server!r} failed: {reason}")


class PathNotAllowed(AgentError):
    """A working directory or file path is outside the roots, or is a credentials location."""

    def __init__(self, path: str, roots: Sequence[str], *, reason: str | None = None) -> None:
        self.path = path
        self.roots = tuple(roots)
        why = reason or f"it is outside the allowed roots ({', '.join(self.roots) or 'none'})"
        super().__init__(
            f"path {excerpt(path, 300)!r} is not allowed: {why}; "
            "set LMSORCH_AGENT_ROOTS to widen the roots"
        )
