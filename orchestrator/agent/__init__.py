"""Autonomous agents: a local model works with the tools of other MCP servers.

Discovery (:mod:`.discovery`) reads which servers exist, the toolbox
(:mod:`.toolbox`) opens them, one child session each (:mod:`.sessions`), and
calls their tools safely (:mod:`.safety`), shaping each result for the model
(:mod:`.tool_results`); the loop (:mod:`.loop`) drives a model through rounds of
tool calls and returns the answer with a compact trace (:mod:`.trace`).
"""

from importlib import import_module
from typing import TYPE_CHECKING, Any

from orchestrator.agent.discovery import McpRegistry, ServerSpec
from orchestrator.agent.errors import (
    AgentError,
    McpConfigError,
    McpServerFailed,
    PathNotAllowed,
    UnknownMcpServer,
)
from orchestrator.agent.safety import working_roots
from orchestrator.agent.settings import AgentSettings
from orchestrator.agent.trace import AgentResult, AgentTrace, Api, StopReason, ToolCallTrace

if TYPE_CHECKING:
    from orchestrator.agent.loop import (
        DEFAULT_INSTRUCTIONS,
        TOOL_ERROR_PREFIX,
        AgentTools,
        Progress,
        ToolOutcome,
        check_rounds,
        run_agent,
    )
    from orchestrator.agent.tool_results import ToolResult
    from orchestrator.agent.toolbox import Toolbox, open_toolbox, probe

# The loop and the toolbox (with the child-session machinery and the SDK's client
# side) load when an agent first runs: the server's start-up needs only discovery,
# settings and the result types (PEP 562).
_LAZY = {
    "DEFAULT_INSTRUCTIONS": "loop",
    "TOOL_ERROR_PREFIX": "loop",
    "AgentTools": "loop",
    "Progress": "loop",
    "ToolOutcome": "loop",
    "check_rounds": "loop",
    "run_agent": "loop",
    "ToolResult": "tool_results",
    "Toolbox": "toolbox",
    "open_toolbox": "toolbox",
    "probe": "toolbox",
}


def __getattr__(name: str) -> Any:
    """Import a loop or toolbox name on first use."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"{__name__}.{module}"), name)


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
