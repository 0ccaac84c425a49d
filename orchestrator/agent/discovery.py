"""Discovery: which MCP servers an agent may use, read from an ``mcp.json`` file.

Where the file is looked up, first match wins:

1. ``AgentSettings.mcp_config`` (``LMSORCH_AGENT_MCP_CONFIG``): an explicit file;
   if it does not exist that is an error, never a silent fallback.
2. ``./.mcp.json`` in the current directory (Claude Code's project file).
3. ``mcp.json`` in LM Studio's home (:mod:`orchestrator.backends.lmstudio_home`).
4. ``~/.mcp.json``, then ``../.mcp.json``: where the previous bridge also looked.
   Read for one release so its users keep their servers, with a warning on
   stderr naming the file and the setting to use instead.

When none exists the registry holds only the chosen presets
(:mod:`.presets`, ``LMSORCH_AGENT_PRESETS``), and using another server says
where it looked. A preset is added to the file's entries unless the file has
an entry of the same name, which wins. The entry format is in :mod:`.entries`;
the top-level key may be ``mcpServers`` or ``servers`` (VS Code's spelling).

An entry that runs this orchestrator itself (``lmsorch``, ``python -m mcp_frontend``)
is never offered: an agent must not spawn the server it runs in. An entry with
``"disabled": true`` is never offered either (and its variables are not expanded).
The allow-list and deny-list of :class:`AgentSettings` apply by name, deny
winning. The file is re-read whenever its modification time or size changes.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import msgspec

from orchestrator import legacy_env
from orchestrator.agent.entries import (
    ServerSpec,
    expand_vars,
    parse_entry,
    runs_this_server,
    shape_error,
)
from orchestrator.agent.errors import McpConfigError, UnknownMcpServer
from orchestrator.agent.presets import preset_entries
from orchestrator.agent.settings import AgentSettings
from orchestrator.backends.lmstudio_home import lmstudio_home
from orchestrator.errors import excerpt

__all__ = ["McpRegistry", "ServerSpec", "expand_vars", "parse_entry"]

_MAX_CONFIG_BYTES = 1024 * 1024
_PRESETS_ONLY = Path("<presets>")  # the key of a parse with no file: presets never change


class _Loaded(msgspec.Struct, frozen=True):
    """One parse of the file, keyed by its identity so a change is noticed."""

    path: Path
    stamp: tuple[int, int]
    servers: dict[str, ServerSpec]
    invalid: dict[str, str]
    refused: dict[str, str]


class McpRegistry:
    """The MCP servers an agent may use, from the first ``mcp.json`` found (see module doc).

    Cheap to call repeatedly: :meth:`servers` stats the file and re-reads it only
    when its modification time or size changed. Entries that cannot be used (a bad
    shape, an undefined variable, this server itself, disabled, denied) are left out of
    :meth:`servers` and reported by :meth:`invalid`; :meth:`get` on one raises
    an error saying why.
    """

    def __init__(
        self,
        settings: AgentSettings,
        *,
        cwd: Path | None = None,
        home: Path | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        """Remember where to look; nothing is read until :meth:`servers` is called."""
        self._settings = settings
        self._cwd = cwd
        self._home = home
        self._environ = environ
        self._loaded: _Loaded | None = None

    def candidates(self) -> tuple[Path, ...]:
        """The files looked at, in order (just the explicit one when it is configured)."""
        if self._settings.mcp_config:
            return (Path(self._settings.mcp_config).expanduser(),)
        cwd = self._cwd or Path.cwd()
        home = self._home or Path.home()
        return (
            cwd / ".mcp.json",
            lmstudio_home(home) / "mcp.json",
            *self._bridge_candidates(cwd, home),
        )

    @staticmethod
    def _bridge_candidates(cwd: Path, home: Path) -> tuple[Path, ...]:
        """The previous bridge's last two places, read for one release (see module doc)."""
        return (home / ".mcp.json", cwd.parent / ".mcp.json")

    @property
    def source(self) -> Path | None:
        """The file in use, or ``None`` when no configuration file exists."""
        candidates = self.candidates()
        if self._settings.mcp_config:
            return candidates[0]
        found = next((p for p in candidates if p.is_file()), None)
        if found is not None and found in candidates[2:]:
            legacy_env.warn_once(
                f"reading MCP servers from {found}, where the previous bridge looked; set "
                f"LMSORCH_AGENT_MCP_CONFIG={found} to keep using it (this fallback is "
                "removed in the next release)"
            )
        return found

    def _stamp(self, path: Path) -> tuple[int, int]:
        try:
            st = path.stat()
        except FileNotFoundError:
            raise McpConfigError(
                f"MCP configuration {path} does not exist (set by LMSORCH_AGENT_MCP_CONFIG); "
                "create it or unset the setting"
            ) from None
        except OSError as exc:
            raise McpConfigError(f"MCP configuration {path} cannot be read: {exc}") from exc
        return (st.st_mtime_ns, st.st_size)

    def _load(self) -> _Loaded | None:
        path = self.source
        if path is None and not self._settings.presets:
            self._loaded = None
            return None
        stamp = (0, 0) if path is None else self._stamp(path)
        key = (path or _PRESETS_ONLY, stamp)
        if self._loaded is not None and (self._loaded.path, self._loaded.stamp) == key:
            return self._loaded
        self._loaded = self._parse(*key)
        return self._loaded

    def _read(self, path: Path, stamp: tuple[int, int]) -> dict[str, Any]:
        """The file's ``mcpServers`` object (empty for the presets-only key)."""
        if path == _PRESETS_ONLY:
            return {}
        if stamp[1] > _MAX_CONFIG_BYTES:
            raise shape_error(path, f"file is larger than {_MAX_CONFIG_BYTES} bytes")
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise McpConfigError(f"MCP configuration {path} cannot be read: {exc}") from exc
        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise shape_error(path, f"not valid JSON: {excerpt(str(exc))}") from exc
        if not isinstance(data, dict):
            raise shape_error(path, 'the top level must be an object with "mcpServers"')
        entries = data.get("mcpServers", data.get("servers"))
        if entries is None:
            raise shape_error(path, 'no "mcpServers" object')
        if not isinstance(entries, dict):
            raise shape_error(path, '"mcpServers" must be an object of name -> server')
        return entries

    def _parse(self, path: Path, stamp: tuple[int, int]) -> _Loaded:
        # The file's own entry of a preset's name wins: that is how a preset is changed.
        entries = preset_entries(self._settings.presets) | self._read(path, stamp)
        environ = os.environ if self._environ is None else self._environ
        allow, deny = set(self._settings.allow), set(self._settings.deny)
        servers: dict[str, ServerSpec] = {}
        invalid: dict[str, str] = {}
        refused: dict[str, str] = {}
        for name, entry in entries.items():
            disabled = entry.get("disabled", False) if isinstance(entry, dict) else False
            if not isinstance(disabled, bool):
                invalid[name] = str(
                    shape_error(path, f"server {name!r}: disabled must be true or false")
                )
                continue
            if disabled:  # switched off by the user: never spawned, whatever else it says
                refused[name] = f"MCP server {name!r} is disabled in {path}"
                continue
            try:
                spec = parse_entry(name, entry, path=path, environ=environ)
            except McpConfigError as exc:
                invalid[name] = str(exc)
                continue
            if spec.command is not None and runs_this_server(spec.command, spec.args):
                invalid[name] = (
                    f"MCP server {name!r} runs this orchestrator itself (lmsorch); "
                    "an agent never spawns the server it runs in"
                )
            elif name in deny:
                refused[name] = f"MCP server {name!r} is denied by LMSORCH_AGENT_DENY"
            elif allow and name not in allow:
                refused[name] = f"MCP server {name!r} is not in LMSORCH_AGENT_ALLOW"
            else:
                servers[name] = spec
        return _Loaded(path, stamp, servers, invalid, refused)

    def servers(self) -> dict[str, ServerSpec]:
        """The usable servers by name (re-read if the file changed).

        Raises:
            McpConfigError: the explicit file is missing, or the file is unreadable,
                not JSON, or not shaped ``{"mcpServers": {...}}``.
        """
        loaded = self._load()
        return {} if loaded is None else dict(loaded.servers)

    def invalid(self) -> dict[str, str]:
        """Broken entries (bad shape, undefined variable, this server itself) with the reason.

        Entries left out as disabled or by the allow-list or deny-list are not reported.
        """
        loaded = self._load()
        return {} if loaded is None else dict(loaded.invalid)

    def get(self, name: str) -> ServerSpec:
        """The server called ``name``.

        Raises:
            UnknownMcpServer: no entry has that name, or it is disabled, denied or not allowed.
            McpConfigError: the entry exists but is malformed, uses an undefined
                variable or runs this orchestrator; or the file itself is broken.
        """
        loaded = self._load()
        if loaded is not None:
            if name in loaded.servers:
                return loaded.servers[name]
            if name in loaded.refused:
                raise UnknownMcpServer(name, loaded.servers, hint=loaded.refused[name])
            if name in loaded.invalid:
                raise McpConfigError(loaded.invalid[name])
            if loaded.path != _PRESETS_ONLY:
                raise UnknownMcpServer(name, loaded.servers, hint=f"configured in {loaded.path}")
        looked = ", ".join(str(p) for p in self.candidates())
        raise UnknownMcpServer(
            name,
            () if loaded is None else loaded.servers,
            hint=f"no MCP configuration file found (looked in {looked}; "
            "set LMSORCH_AGENT_MCP_CONFIG, or LMSORCH_AGENT_PRESETS for a ready-made server)",
        )
