"""Resources: the model list, each model's status (JSON), and the live statechart (Mermaid)."""

from __future__ import annotations

from typing import Any

import msgspec
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ResourceError, ResourceNotFoundError

from mcp_frontend.deps import Deps
from mcp_frontend.errors import ToolError
from mcp_frontend.tools.lifecycle import model_list, status_list
from orchestrator import State
from orchestrator.lifecycle import render_mermaid

__all__ = ["register"]

_JSON = "application/json"


def _json(value: Any) -> str:
    return msgspec.json.format(msgspec.json.encode(value), indent=2).decode()


def register(mcp: MCPServer[Any], deps: Deps) -> None:
    """Register the resources on ``mcp``."""
    orch = deps.orch

    @mcp.resource("lmsorch://models", name="models", mime_type=_JSON)
    async def models() -> str:
        """Every model the backend offers, with loaded instances and lifecycle states."""
        try:
            return _json(await model_list(deps))
        except ToolError as exc:
            raise ResourceError(str(exc)) from exc

    @mcp.resource("lmsorch://status", name="status", mime_type=_JSON)
    async def status() -> str:
        """The status of every model this server manages."""
        return _json((await status_list(deps))["models"])

    @mcp.resource("lmsorch://status/{+model}", name="model-status", mime_type=_JSON)
    async def model_status(model: str) -> str:
        """One model's status (UNLOADED if this server has not used it yet)."""
        try:
            return _json((await status_list(deps, model))["models"][0])
        except ToolError as exc:
            raise ResourceNotFoundError(str(exc)) from exc

    @mcp.resource("lmsorch://statechart", name="statechart", mime_type="text/vnd.mermaid")
    async def statechart() -> str:
        """The model lifecycle as a Mermaid state diagram, each model shown in its state."""
        by_state: dict[State, list[str]] = {}
        for s in orch.status():
            by_state.setdefault(s.state, []).append(s.model)
        return render_mermaid(by_state)
