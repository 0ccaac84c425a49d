"""Argument completion (``completion/complete``): model keys and MCP server names.

A client completing a ``model`` argument (the ``lmsorch://status/{+model}``
template's, or any other reference's) gets the catalogue's keys that start with
what was typed; one completing ``mcp_name`` gets the servers configured in
``mcp.json`` (the ones ``list_available_mcps`` shows). Other arguments complete
to nothing. The catalogue is the cached one, so completing does not hit the
backend on every keystroke.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from mcp.server.mcpserver import MCPServer
from mcp.types import (
    Completion,
    CompletionArgument,
    CompletionContext,
    PromptReference,
    ResourceTemplateReference,
)

from mcp_frontend.deps import Deps
from orchestrator import OrchestratorError
from orchestrator.agent import McpRegistry

__all__ = ["MAX_VALUES", "register"]

MAX_VALUES = 100
"""The most values one answer carries (the MCP spec's limit); ``has_more`` says when cut."""

_Handler = Callable[
    [PromptReference | ResourceTemplateReference, CompletionArgument, CompletionContext | None],
    Awaitable[Completion | None],
]
_MODEL_ARGUMENTS = frozenset({"model"})
_MCP_ARGUMENTS = frozenset({"mcp_name", "mcp_names"})


def _completion(candidates: list[str], typed: str) -> Completion:
    matches = sorted(c for c in candidates if c.startswith(typed))
    return Completion(
        values=matches[:MAX_VALUES], total=len(matches), has_more=len(matches) > MAX_VALUES
    )


def register(mcp: MCPServer[Any], deps: Deps, registry: McpRegistry) -> None:
    """Register the completion handler on ``mcp``."""

    async def complete(
        ref: PromptReference | ResourceTemplateReference,
        argument: CompletionArgument,
        context: CompletionContext | None,
    ) -> Completion | None:
        if argument.name in _MODEL_ARGUMENTS:
            try:
                catalog = await deps.orch.catalog()
            except OrchestratorError:
                return None  # no suggestions beat an error while typing
            return _completion([m.key for m in catalog], argument.value)
        if argument.name in _MCP_ARGUMENTS:
            return _completion(list(registry.servers()), argument.value)
        return None

    # The SDK's decorator is unannotated; its contract is the signature above.
    decorate: Callable[[_Handler], _Handler] = mcp.completion()  # type: ignore[no-untyped-call]
    decorate(complete)
