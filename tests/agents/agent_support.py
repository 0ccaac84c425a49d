"""Shared helpers for the agent tests (no fixtures: plain functions).

``toy_spec`` / ``write_mcp_json`` point at ``servers/toy_server.py`` run by this
interpreter, so no network and no installed server is needed.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from orchestrator.agent import AgentSettings, ServerSpec
from tests.backends.llamacpp_support import Procs

__all__ = [
    "BROKEN_SERVER",
    "TOY_SERVER",
    "child_pids",
    "gone",
    "leaky_spec",
    "open_fds",
    "toy_entry",
    "toy_settings",
    "toy_spec",
    "write_mcp_json",
]

TOY_SERVER = Path(__file__).parent / "servers" / "toy_server.py"
BROKEN_SERVER = Path(__file__).parent / "servers" / "broken_server.py"


def toy_entry(mode: str = "serve", **extra: Any) -> dict[str, Any]:
    """An ``mcpServers`` entry run with ``sys.executable``.

    ``mode="serve"`` is the toy server; ``exit``, ``hang`` and ``noise`` run
    ``broken_server.py``, which exits at once, never answers initialize, or
    writes non-JSON to stdout and then hangs.
    """
    args = [str(TOY_SERVER)] if mode == "serve" else [str(BROKEN_SERVER), mode]
    return {"command": sys.executable, "args": args, **extra}


def toy_spec(name: str = "toy", mode: str = "serve", *, cwd: Path | None = None) -> ServerSpec:
    """A :class:`ServerSpec` for the toy server."""
    entry = toy_entry(mode)
    return ServerSpec(
        name=name,
        transport="stdio",
        command=entry["command"],
        args=tuple(entry["args"]),
        cwd=None if cwd is None else str(cwd),
    )


_LEAKY = """\
import os, runpy, sys
print("leaky: my token is", os.environ["LEAKY_TOKEN"], file=sys.stderr, flush=True)
if sys.argv[1] == "exit":
    sys.exit(3)
runpy.run_path(sys.argv[2], run_name="__main__")
"""


def leaky_spec(
    tmp_path: Path, token: str, mode: str = "exit", *, name: str = "leaky"
) -> ServerSpec:
    """A stdio server that prints its ``LEAKY_TOKEN`` env value to stderr first.

    ``mode="exit"`` then exits at once; ``serve`` goes on as the toy server (whose
    ``crash`` tool makes the stderr tail show up in the "connection closed" reason).
    """
    script = tmp_path / "leaky_server.py"
    script.write_text(_LEAKY)
    return ServerSpec(
        name=name,
        transport="stdio",
        command=sys.executable,
        args=(str(script), mode, str(TOY_SERVER)),
        env={"LEAKY_TOKEN": token},
    )


def write_mcp_json(path: Path, servers: Mapping[str, Any] | None = None) -> Path:
    """Write an ``mcp.json`` at ``path`` (default: one ``toy`` server) and return the path."""
    data = {"mcpServers": dict(servers) if servers is not None else {"toy": toy_entry()}}
    path.write_text(json.dumps(data, indent=2))
    return path


def toy_settings(root: Path, **overrides: Any) -> AgentSettings:
    """Settings with ``root`` as the only root and short, test-friendly timeouts."""
    values: dict[str, Any] = {"roots": (str(root),), "start_timeout_s": 20.0}
    values.update(overrides)
    return AgentSettings(**values)


def open_fds() -> set[int]:
    """This process's open file descriptors (to show a server left no pipe behind)."""
    return {int(fd) for fd in os.listdir("/proc/self/fd")}


def child_pids(parent: int | None = None) -> list[int]:
    """Live (non-zombie) child processes of ``parent`` (default: this process), from /proc."""
    parent = os.getpid() if parent is None else parent
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(stat[1]) == parent and stat[0] != "Z":
            found.append(int(entry.name))
    return found


# Wait (bounded) until a pid has fully exited; a pidfd wakes us, no polling.
gone = Procs.gone
