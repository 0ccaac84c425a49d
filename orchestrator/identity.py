"""The name this product goes by, shared by the MCP server and the agent's self-checks."""

from __future__ import annotations

__all__ = ["SERVER_NAME"]

SERVER_NAME = "lmstudio-orchestrator"
"""The name the MCP server reports in ``serverInfo``; an agent refuses a child that reports it."""
