"""The previous LM Studio bridge's environment variables, honoured for one release.

Its users keep their ``.mcp.json`` ``env`` blocks working: each old variable is
translated to the new one (unless the new one is set too, which wins) and named
once per process on stderr with its replacement. Stderr, not the log: the
configuration is read before logging is set up, and stdout is the MCP wire.

==================  ==========================================================
old variable        new setting
==================  ==========================================================
``LMSTUDIO_HOST``   ``LMSTUDIO_BASE_URL=http://HOST:PORT`` (and the LM Studio
``LMSTUDIO_PORT``   backend when ``LMSORCH_BACKEND`` is unset: the old bridge
                    spoke only to LM Studio)
``DEFAULT_MODEL``   ``LMSORCH_DEFAULT_MODEL``
``MCP_JSON_PATH``   ``LMSORCH_AGENT_MCP_CONFIG``
``WORKING_DIR``     ``LMSORCH_AGENT_ROOTS`` (the directory agents work in is now
                    also the boundary of the paths they may touch)
==================  ==========================================================
"""

from __future__ import annotations

import sys
from collections.abc import Mapping

__all__ = ["translate", "warn_once"]

_RENAMED = {
    "DEFAULT_MODEL": "LMSORCH_DEFAULT_MODEL",
    "MCP_JSON_PATH": "LMSORCH_AGENT_MCP_CONFIG",
    "WORKING_DIR": "LMSORCH_AGENT_ROOTS",
}
_warned: set[str] = set()


def warn_once(message: str) -> None:
    """Print ``message`` as a warning on stderr, the first time only (per process)."""
    if message not in _warned:
        _warned.add(message)
        print(f"lmsorch: warning: {message}", file=sys.stderr)


def _warn(old: str, new: str) -> None:
    warn_once(f"{old} is deprecated; set {new} instead")


def translate(env: Mapping[str, str]) -> dict[str, str]:
    """Return ``env`` with each old variable's value under its new name (warned once)."""
    out = dict(env)
    for old, new in _RENAMED.items():
        if env.get(old):
            _warn(old, new)
            out.setdefault(new, env[old])
    host, port = env.get("LMSTUDIO_HOST"), env.get("LMSTUDIO_PORT")
    if host or port:
        url = f"http://{host or 'localhost'}:{port or '1234'}"
        for old in ("LMSTUDIO_HOST", "LMSTUDIO_PORT"):
            if env.get(old):
                _warn(old, f"LMSTUDIO_BASE_URL={url}")
        out.setdefault("LMSTUDIO_BASE_URL", url)
        out.setdefault("LMSORCH_BACKEND", "lmstudio")
    return out
