"""Autonomous agents: a local model works with the tools of other MCP servers.

Discovery (:mod:`.discovery`) reads which servers exist, the toolbox
(:mod:`.toolbox`) opens them, one child session each (:mod:`.sessions`), and
calls their tools safely (:mod:`.safety`), shaping each result for the model
(:mod:`.tool_results`); the loop (:mod:`.loop`) drives a model through rounds of
tool calls and returns the answer with a compact trace (:mod:`.trace`).
"""

from orchestrator.agent.discovery import McpRegistry, ServerSpec
from orchestrator.agent.errors import (
    AgentError,
    McpConfigError,
    McpServerFailed,
    PathNotAllowed,
    UnknownMcpServer,
)
from orchestrator.agent.loop import (
    DEFAULT_INSTRUCTIONS,
    TOOL_ERROR_PREFIX,
    AgentTools,
    Progress,
    ToolOutcome,
    check_rounds,
    run_agent,
)
from orchestrator.agent.safety import working_roots
from orchestrator.agent.settings import AgentSettings
from orchestrator.agent.tool_results import ToolResult
from orchestrator.agent.toolbox import Toolbox, open_toolbox, probe
from orchestrator.agent.trace import AgentResult, AgentTrace, Api, StopReason, ToolCallTrace

__all__ = [
    "DEFAULT_INSTRUCTIONS",
    "TOOL_ERROR_PREFIX",
    "AgentError",
    "AgentResult",
    "AgentSettings",
    "AgentTools",
    "AgentTrace",
    "Api",
    "McpConfigError",
    "McpRegistry",
    "McpServerFailed",
    "PathNotAllowed",
    "Progress",
    "ServerSpec",
    "StopReason",
    "ToolCallTrace",
    "ToolOutcome",
    "ToolResult",
    "Toolbox",
    "UnknownMcpServer",
    "check_rounds",
    "open_toolbox",
    "probe",
    "run_agent",
    "working_roots",
]
