"""The JSON schema check, as a tool (the same check chat_completion runs on response formats)."""

from __future__ import annotations

from typing import Any

from mcp.server.mcpserver import MCPServer
from mcp.types import ToolAnnotations

from mcp_frontend.checks.json_schema import check_schema
from mcp_frontend.deps import Deps
from mcp_frontend.tools.io_types import SchemaCheckOut

__all__ = ["register"]


def register(mcp: MCPServer[Any], deps: Deps) -> None:
    """Register ``validate_json_schema`` on ``mcp``."""
    limits = deps.settings

    @mcp.tool(
        title="Validate a JSON schema",
        annotations=ToolAnnotations(
            read_only_hint=True, idempotent_hint=True, open_world_hint=False
        ),
    )
    async def validate_json_schema(schema: dict[str, Any]) -> SchemaCheckOut:
        """Check a JSON schema before using it as a response format.

        Checks it against its meta-schema (Draft 2020-12 by default), within the size
        and nesting limits; only local $refs are allowed. Warnings are advice.
        """
        report = check_schema(
            schema, max_depth=limits.max_schema_depth, max_bytes=limits.max_schema_bytes
        )
        return SchemaCheckOut(
            valid=report.valid,
            errors=report.errors,
            warnings=report.warnings,
            depth=report.depth,
            size_bytes=report.size_bytes,
        )
