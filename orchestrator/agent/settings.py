"""Settings of the autonomous-agent layer, from ``LMSORCH_AGENT_<FIELD>`` variables.

Example: ``LMSORCH_AGENT_MCP_CONFIG=~/work/.mcp.json``,
``LMSORCH_AGENT_ROOTS=/home/me/project:/tmp/scratch`` (roots are separated by
``os.pathsep``), ``LMSORCH_AGENT_DENY=shell,browser`` (server names are separated
by ``,`` or ``os.pathsep``), ``LMSORCH_AGENT_MAX_ROUNDS=10``,
``LMSORCH_AGENT_PRESETS=filesystem,memory`` (ready-made servers, see :mod:`.presets`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import msgspec

from orchestrator import legacy_env
from orchestrator.agent.errors import PathNotAllowed
from orchestrator.agent.presets import check_presets
from orchestrator.env_settings import names_list, paths_list, settings_from_env
from orchestrator.errors import ConfigError
from orchestrator.paths import implicit_root

__all__ = ["ENV_PREFIX", "AgentSettings"]

ENV_PREFIX = "LMSORCH_AGENT_"

_POSITIVE_INTS = ("max_rounds", "max_rounds_cap", "max_result_chars", "context_budget_chars")
_POSITIVE_FLOATS = ("deadline_s", "call_timeout_s", "start_timeout_s")


class AgentSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Where MCP servers are defined, what agents may touch, and the loop's limits.

    Attributes:
        mcp_config: an explicit ``mcp.json`` path (``~`` is expanded). When unset
            the registry uses ``./.mcp.json``, else ``mcp.json`` in LM Studio's home.
        allow: server names agents may use; empty allows every configured server.
        deny: server names agents may never use; wins over ``allow``.
        presets: ready-made servers to offer besides the file's
            (``filesystem``, ``memory``, ``fetch``, ``github``; see :mod:`.presets`).
        roots: directories that working directories and file-path arguments must
            lie in (symlinks and ``..`` resolved first); empty means the current directory.
        max_rounds: default model rounds per run.
        max_rounds_cap: hard cap; a run asking for more is refused.
        deadline_s: overall deadline of one run.
        call_timeout_s: deadline of one tool call.
        start_timeout_s: deadline for one server to start, initialize and list its tools.
        max_result_chars: a tool result longer than this is cut, with a note saying so.
        context_budget_chars: size budget of the loop's conversation.
    """

    mcp_config: str | None = None
    allow: tuple[str, ...] = ()
    deny: tuple[str, ...] = ()
    presets: tuple[str, ...] = ()
    roots: tuple[str, ...] = ()
    max_rounds: int = 25
    max_rounds_cap: int = 100
    deadline_s: float = 600.0
    call_timeout_s: float = 60.0
    start_timeout_s: float = 30.0
    max_result_chars: int = 20_000
    context_budget_chars: int = 120_000

    def __post_init__(self) -> None:
        check_presets(self.presets)
        for name in _POSITIVE_INTS:
            if getattr(self, name) < 1:
                raise ConfigError(f"{ENV_PREFIX}{name.upper()} must be at least 1")
        for name in _POSITIVE_FLOATS:
            value = getattr(self, name)
            if not 0 < value < float("inf"):
                raise ConfigError(f"{ENV_PREFIX}{name.upper()} must be a positive number")
        if self.max_rounds > self.max_rounds_cap:
            raise ConfigError(
                f"{ENV_PREFIX}MAX_ROUNDS ({self.max_rounds}) exceeds "
                f"{ENV_PREFIX}MAX_ROUNDS_CAP ({self.max_rounds_cap})"
            )

    def resolved_roots(self) -> tuple[Path, ...]:
        """Return the roots, ``~``-expanded and resolved (the current directory if none).

        Raises:
            PathNotAllowed: no roots are set and the current directory is ``/``,
                the home directory or above it: too broad to be the default root.
        """
        if self.roots:
            return tuple(Path(r).expanduser().resolve() for r in self.roots)
        root = implicit_root()
        if root is None:
            cwd = str(Path.cwd())
            raise PathNotAllowed(
                cwd,
                (),
                reason="no roots are set and the current directory is too broad to be the "
                "default root (/, the home directory or above)",
            )
        return (root,)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> AgentSettings:
        """Build settings from ``LMSORCH_AGENT_*`` variables, then ``overrides``.

        ``roots`` is split on ``os.pathsep``; ``allow``, ``deny`` and ``presets`` on ``,`` or
        ``os.pathsep``. Empty pieces are dropped.

        Raises:
            ConfigError: a variable is unknown to us, or its value is invalid.
        """
        # The previous bridge's MCP_JSON_PATH and WORKING_DIR still count (with a warning).
        environ = legacy_env.translate(os.environ if environ is None else environ)
        return settings_from_env(
            cls,
            ENV_PREFIX,
            environ,
            overrides,
            what="agent setting",
            parsers={
                "roots": paths_list,
                "allow": names_list,
                "deny": names_list,
                "presets": names_list,
                "mcp_config": lambda value: value or None,
            },
        )
