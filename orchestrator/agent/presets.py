"""Ready-made MCP servers: the previous bridge's four agents, as named ``mcp.json`` entries.

The previous bridge hard-coded a filesystem, a memory, a fetch and a GitHub
agent, each spawning an official MCP server package. Here each one is a preset:
an ``mcpServers`` entry the user switches on by name
(``LMSORCH_AGENT_PRESETS=filesystem,memory``), never started unless chosen,
and then used like any configured server (``autonomous_with_mcp`` with
``mcp_name="filesystem"``). An entry of the same name in the user's
``mcp.json`` wins over the preset, so a preset can be pinned or changed there.

The entries run the same packages the previous bridge ran, the same way
(``npx -y`` for the npm ones, ``uvx`` for the PyPI one):

==============  ================================================================
``filesystem``  ``npx -y @modelcontextprotocol/server-filesystem .``: the
                server's allowed directory is its working directory, which is
                the run's ``working_directory`` (else the first agent root)
``memory``      ``npx -y @modelcontextprotocol/server-memory`` (a knowledge graph)
``fetch``       ``uvx mcp-server-fetch`` (web pages as markdown)
``github``      ``npx -y @modelcontextprotocol/server-github`` with
                ``GITHUB_PERSONAL_ACCESS_TOKEN`` taken from our environment
                (``${GITHUB_PERSONAL_ACCESS_TOKEN}``; the token is no longer a
                tool argument)
==============  ================================================================
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Any

from orchestrator.errors import ConfigError

__all__ = ["PRESETS", "check_presets", "preset_entries"]

PRESETS: Mapping[str, Mapping[str, Any]] = MappingProxyType(
    {
        "filesystem": {
            "command": "npx",
            "args": ["-y", "@modelcontextprotocol/server-filesystem", "."],
        },
        "memory": {"command": "npx", "args": ["-y", "@modelcontextprotocol/server-memory"]},
        "fetch": {"command": "uvx", "args": ["mcp-server-fetch"]},
        "github": {
            "command": "npx",
            "args": ["-y", "@modelcontextprotocol/server-github"],
            "env": {"GITHUB_PERSONAL_ACCESS_TOKEN": "${GITHUB_PERSONAL_ACCESS_TOKEN}"},
        },
    }
)


def check_presets(names: Iterable[str]) -> None:
    """Refuse a name that is no preset, with the closest one.

    Raises:
        ConfigError: ``names`` holds an unknown preset name.
    """
    for name in names:
        if name not in PRESETS:
            close = difflib.get_close_matches(name, PRESETS, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise ConfigError(
                f"LMSORCH_AGENT_PRESETS: unknown preset {name!r}; {hint}"
                f"presets: {', '.join(PRESETS)}"
            )


def preset_entries(names: Iterable[str]) -> dict[str, Mapping[str, Any]]:
    """The ``mcpServers`` entries of the presets called ``names``."""
    return {name: PRESETS[name] for name in names}
