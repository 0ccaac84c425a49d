"""Autonomous agents: a local model works with the tools of other MCP servers.

Discovery (:mod:`.discovery`) reads which servers exist, the toolbox
(:mod:`.toolbox`) opens them and calls their tools safely (:mod:`.safety`), and
the loop drives a model through rounds of tool calls.
"""

from orchestrator.agent.discovery import McpRegistry, ServerSpec
from orchestrator.agent.errors import (
    AgentError,
    McpConfigError,
    McpServerFailed,
    PathNotAllowed,
    UnknownMcpServer,
)
from orchestrator.agent.settings import AgentSettings

__all__ = [
    "AgentError",
    "AgentSettings",
    "McpConfigError",
    "McpRegistry",
    "McpServerFailed",
    "PathNotAllowed",
    "ServerSpec",
    "UnknownMcpServer",
]
