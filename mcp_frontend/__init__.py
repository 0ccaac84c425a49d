"""The MCP face of lmstudio-orchestrator: ``build_server(orch)`` and the ``lmsorch`` CLI.

``build_server`` is imported lazily so that ``lmsorch --help`` (which imports
this package) does not pay for importing the MCP SDK.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mcp_frontend.server import build_server

__all__ = ["build_server"]


def __getattr__(name: str) -> Any:
    if name == "build_server":
        from mcp_frontend.server import build_server

        return build_server
    raise AttributeError(f"module 'mcp_frontend' has no attribute {name!r}")
