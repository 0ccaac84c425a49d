"""Autonomous agents: a local model works with the tools of other MCP servers.

Discovery (:mod:`.discovery`) reads which servers exist, the toolbox
(:mod:`.toolbox`) opens them and calls their tools safely (:mod:`.safety`), and
the loop drives a model through rounds of tool calls.
"""

from orchestrator.agent.discovery import McpRegistry, ServerSpec, probe
from orchestrator.agent.errors import (
    AgentError,
    McpConfigError,
    McpServerFailed,
    PathNotAllowed,
    UnknownMcpServer,
)
from orchestrator.agent.settings import AgentSettings
from orchestrator.agent.toolbox import Toolbox, ToolResult, open_toolbox

__all__ = [
    "AgentError",
    "AgentSettings",
    "McpConfigError",
    "McpRegistry",
    "McpServerFailed",
    "PathNotAllowed",
    "ServerSpec",
    "ToolResult",
    "Toolbox",
    "UnknownMcpServer",
    "open_toolbox",
    "probe",
]
