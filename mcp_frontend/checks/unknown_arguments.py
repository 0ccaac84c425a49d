"""Unknown tool arguments are errors, not silently dropped.

The SDK validates argument types and reports a missing or wrong-typed one as a
tool error naming the field, but it ignores names it does not know, so a typo
(``temprature``) would pass unnoticed. This middleware rejects them the same
way: an ``is_error`` result naming the unknown arguments and the accepted ones.
Like every argument error it is a tool result the model can read and correct,
not a JSON-RPC error (the MCP spec's advice for input validation since
2025-11-25).

It also trims the SDK's argument errors to the documented form
(:mod:`mcp_frontend.checks.argument_errors`) and bounds the text of every tool
error: the SDK's validation error lists each bad item, so a 50 000-item
``messages`` list of the wrong type would come back as an 11 MB error that
helps no one.
"""

from __future__ import annotations

from typing import Any

from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.mcpserver import MCPServer
from mcp.types import CallToolResult, TextContent

from mcp_frontend.checks.argument_errors import trim_validation_error

__all__ = ["UnknownArgumentGuard"]

_SHOWN = 5
MAX_ERROR_CHARS = 2000
"""A tool error's text is cut to this many characters, with a note saying so."""


class UnknownArgumentGuard:
    """Server middleware: answer a ``tools/call`` naming unknown arguments with a tool error.

    Bind it to its server with :meth:`bind` once every tool is registered. Every
    tool error that passes through it is cut to :data:`MAX_ERROR_CHARS`.
    """

    def __init__(self) -> None:
        self._server: MCPServer[Any] | None = None
        self._accepted: dict[str, frozenset[str]] | None = None

    def bind(self, server: MCPServer[Any]) -> None:
        """Read the accepted argument names from ``server``'s tools (on first use)."""
        self._server = server

    async def _names(self) -> dict[str, frozenset[str]]:
        if self._accepted is None:
            tools = await self._server.list_tools() if self._server else []
            self._accepted = {
                t.name: frozenset(t.input_schema.get("properties", {})) for t in tools
            }
        return self._accepted

    async def __call__(
        self, ctx: ServerRequestContext[Any, Any], call_next: CallNext
    ) -> HandlerResult:
        """Reject a tool call with unknown argument names; pass everything else on."""
        params = ctx.params
        if ctx.method == "tools/call" and isinstance(params, dict):
            name, arguments = params.get("name"), params.get("arguments")
            accepted = (await self._names()).get(name) if isinstance(name, str) else None
            if accepted is not None and isinstance(arguments, dict):
                unknown = sorted(set(arguments) - accepted)
                if unknown:
                    shown = ", ".join(repr(u[:60]) for u in unknown[:_SHOWN])
                    more = f" (and {len(unknown) - _SHOWN} more)" if len(unknown) > _SHOWN else ""
                    text = (
                        f"Error executing tool {name}: unknown argument(s) {shown}{more}; "
                        f"accepted: {', '.join(sorted(accepted)) or 'none'}"
                    )
                    return CallToolResult(
                        content=[TextContent(type="text", text=text)], is_error=True
                    )
        result = await call_next(ctx)
        # The SDK hands the result on already serialised (wire field names).
        if ctx.method == "tools/call" and isinstance(result, dict) and result.get("isError"):
            result["content"] = [_bounded(block) for block in result.get("content", [])]
        return result


def _bounded(block: Any) -> Any:
    """A serialised content ``block``, trimmed, with its text cut to :data:`MAX_ERROR_CHARS`."""
    text = block.get("text") if isinstance(block, dict) else None
    if not isinstance(text, str):
        return block
    text = trim_validation_error(text)
    if len(text) <= MAX_ERROR_CHARS:
        return block | {"text": text}
    note = f" ... [error cut: {len(text) - MAX_ERROR_CHARS} more characters]"
    return block | {"text": text[:MAX_ERROR_CHARS] + note}
