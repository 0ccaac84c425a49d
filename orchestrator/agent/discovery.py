"""Discovery: which MCP servers an agent may use, read from an ``mcp.json`` file.

Where the file is looked up, first match wins:

1. ``AgentSettings.mcp_config`` (``LMSORCH_AGENT_MCP_CONFIG``): an explicit file;
   if it does not exist that is an error, never a silent fallback.
2. ``./.mcp.json`` in the current directory (Claude Code's project file).
3. ``mcp.json`` in LM Studio's home (:mod:`orchestrator.backends.lmstudio_home`).

When none exists the registry is empty and using a server says where it looked.

The format is Claude Code's and LM Studio's::

    {"mcpServers": {
        "git":    {"command": "uvx", "args": ["mcp-server-git"], "env": {"X": "${X}"}, "cwd": "."},
        "remote": {"type": "http", "url": "https://host/mcp",
                   "headers": {"Authorization": "Bearer ${TOKEN}"}}}}

The top-level key may also be ``servers`` (VS Code's spelling). ``type`` may be
``stdio``, ``http`` or ``streamable-http`` (both the streamable HTTP transport);
without it, ``command`` means stdio and ``url`` means HTTP. ``${VAR}`` and
``${VAR:-default}`` are expanded in ``command``, ``args``, ``env``, ``cwd``,
``url`` and ``headers`` from the environment (the default applies when the
variable is unset or empty); an undefined variable without a default makes that
entry unusable, with an error naming the server and the variable. A relative
``cwd`` is relative to the file's directory.

An entry that runs this orchestrator itself (``lmsorch``, ``python -m mcp_frontend``)
is never offered: an agent must not spawn the server it runs in. An entry with
``"disabled": true`` is never offered either (and its variables are not expanded).
The allow-list and deny-list of :class:`AgentSettings` apply by name, deny
winning. The file is re-read whenever its modification time or size changes.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path, PurePath
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

import msgspec

from orchestrator.agent.errors import McpConfigError, UnknownMcpServer
from orchestrator.agent.settings import AgentSettings
from orchestrator.backends.lmstudio_home import lmstudio_home
from orchestrator.errors import excerpt
from orchestrator.identity import SERVER_NAME

__all__ = ["McpRegistry", "ServerSpec", "expand_vars", "parse_entry"]

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_HTTP_TYPES = {"http", "streamable-http", "streamable_http", "streamableHttp"}
_STDIO_TYPES = {"stdio"}
_SELF_NAMES = {"lmsorch", SERVER_NAME, "mcp_frontend"}
_MAX_CONFIG_BYTES = 1024 * 1024


class ServerSpec(msgspec.Struct, frozen=True, kw_only=True):
    """One MCP server an agent may open, with every ``${VAR}`` already expanded.

    ``env`` and ``headers`` hold secrets: they are passed to the server and never
    logged or returned; :meth:`public` is the shape to show. ``shown_args`` and
    ``shown_url`` keep the text as written in the file (``${VAR}`` unexpanded), so
    an expanded secret in an argument or URL is not shown either.
    """

    name: str
    transport: Literal["stdio", "http"]
    command: str | None = None
    args: tuple[str, ...] = ()
    env: dict[str, str] = {}
    cwd: str | None = None
    url: str | None = None
    headers: dict[str, str] = {}
    shown_args: tuple[str, ...] | None = None
    shown_url: str | None = None
    oauth: bool = False  # LM Studio's "auth" object: LM Studio holds the OAuth token, not us

    def __repr__(self) -> str:
        return f"ServerSpec({self.public()!r})"

    def public(self) -> dict[str, object]:
        """Name, transport, command and args or URL; env and header *names* only, never values."""
        out: dict[str, object] = {"name": self.name, "transport": self.transport}
        if self.transport == "stdio":
            out["command"] = self.command
            out["args"] = list(self.args if self.shown_args is None else self.shown_args)
            if self.cwd is not None:
                out["cwd"] = self.cwd
            if self.env:
                out["env"] = sorted(self.env)
        else:
            out["url"] = _public_url(self.shown_url or self.url or "")
            if self.headers:
                out["headers"] = sorted(self.headers)
            if self.oauth:
                out["auth"] = "OAuth, managed by LM Studio"
        return out


def _public_url(url: str) -> str:
    """Drop user info and the query (either may carry a credential)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<invalid url>"
    host = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def expand_vars(text: str, environ: Mapping[str, str], *, server: str, field: str) -> str:
    """Expand ``${VAR}`` and ``${VAR:-default}`` in ``text``.

    Raises:
        McpConfigError: a variable is undefined and has no default.
    """

    def one(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        value = environ.get(name)
        if value:
            return value
        if default is not None:
            return default
        if value is not None:  # set but empty, no default: empty is what the user set
            return value
        raise McpConfigError(
            f"MCP server {server!r}: environment variable {name} (used in {field}) is not set; "
            f"set it or write ${{{name}:-default}}"
        )

    return _VAR.sub(one, text)


def _runs_this_server(command: str, args: tuple[str, ...]) -> bool:
    """Whether a stdio entry would start this orchestrator (``lmsorch``, ``-m mcp_frontend``).

    Words inside arguments count too, so ``sh -c "exec lmsorch serve"`` is caught.
    """
    words = [word for token in (command, *args) for word in token.split()]
    for i, word in enumerate(words):
        base = PurePath(word).name.lower().removesuffix(".exe")
        base = re.split(r"[=<>@\[]", base, maxsplit=1)[0]  # uvx lmsorch==0.1 / pkg[extra]
        if base in _SELF_NAMES:
            return True
        if word == "-m" and i + 1 < len(words) and words[i + 1].split(".", 1)[0] in _SELF_NAMES:
            return True
    return False


def _shape_error(path: Path, problem: str) -> McpConfigError:
    return McpConfigError(f"MCP configuration {path}: {problem}")


def _strings(value: Any, *, what: str, path: Path, server: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _shape_error(path, f"server {server!r}: {what} must be a list of strings")
    return tuple(value)


def _string_map(value: Any, *, what: str, path: Path, server: str) -> dict[str, str]:
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str | int | float | bool) for k, v in value.items()
    ):
        raise _shape_error(path, f"server {server!r}: {what} must be an object of strings")
    return {k: v if isinstance(v, str) else json.dumps(v) for k, v in value.items()}


def parse_entry(name: str, entry: Any, *, path: Path, environ: Mapping[str, str]) -> ServerSpec:
    """Turn one ``mcpServers`` entry into a :class:`ServerSpec`.

    Raises:
        McpConfigError: the entry has the wrong shape or uses an undefined variable.
    """
    if not isinstance(entry, dict):
        raise _shape_error(path, f"server {name!r} must be an object")
    kind = entry.get("type")
    if kind is not None and kind not in _HTTP_TYPES | _STDIO_TYPES:
        raise _shape_error(
            path,
            f"server {name!r}: unsupported type {excerpt(repr(kind), 40)} "
            "(supported: stdio, http, streamable-http)",
        )
    if kind in _HTTP_TYPES or (kind is None and "url" in entry and "command" not in entry):
        url = entry.get("url")
        if not isinstance(url, str) or not url:
            raise _shape_error(path, f"server {name!r}: an HTTP server needs a 'url' string")
        headers = _string_map(entry.get("headers", {}), what="headers", path=path, server=name)
        expanded = expand_vars(url, environ, server=name, field="url")
        if urlsplit(expanded).scheme not in ("http", "https"):
            raise _shape_error(path, f"server {name!r}: url must start with http:// or https://")
        return ServerSpec(
            name=name,
            transport="http",
            url=expanded,
            shown_url=url,
            headers={
                k: expand_vars(v, environ, server=name, field=f"headers.{k}")
                for k, v in headers.items()
            },
            oauth=isinstance(entry.get("auth"), dict),
        )
    command = entry.get("command")
    if not isinstance(command, str) or not command.strip():
        raise _shape_error(
            path, f"server {name!r} needs a 'command' string (stdio) or a 'url' (HTTP)"
        )
    args = _strings(entry.get("args", []), what="args", path=path, server=name)
    env = _string_map(entry.get("env", {}), what="env", path=path, server=name)
    cwd = entry.get("cwd")
    if cwd is not None and not isinstance(cwd, str):
        raise _shape_error(path, f"server {name!r}: cwd must be a string")
    resolved_cwd = None
    if cwd:
        expanded_cwd = Path(expand_vars(cwd, environ, server=name, field="cwd")).expanduser()
        resolved_cwd = str(
            expanded_cwd if expanded_cwd.is_absolute() else path.parent / expanded_cwd
        )
    return ServerSpec(
        name=name,
        transport="stdio",
        command=expand_vars(command, environ, server=name, field="command"),
        args=tuple(expand_vars(a, environ, server=name, field="args") for a in args),
        shown_args=args,
        env={k: expand_vars(v, environ, server=name, field=f"env.{k}") for k, v in env.items()},
        cwd=resolved_cwd,
    )


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
        return (cwd / ".mcp.json", lmstudio_home(home) / "mcp.json")

    @property
    def source(self) -> Path | None:
        """The file in use, or ``None`` when no configuration file exists."""
        candidates = self.candidates()
        if self._settings.mcp_config:
            return candidates[0]
        return next((p for p in candidates if p.is_file()), None)

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
        if path is None:
            self._loaded = None
            return None
        stamp = self._stamp(path)
        if self._loaded is not None and (self._loaded.path, self._loaded.stamp) == (path, stamp):
            return self._loaded
        self._loaded = self._parse(path, stamp)
        return self._loaded

    def _parse(self, path: Path, stamp: tuple[int, int]) -> _Loaded:
        if stamp[1] > _MAX_CONFIG_BYTES:
            raise _shape_error(path, f"file is larger than {_MAX_CONFIG_BYTES} bytes")
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise McpConfigError(f"MCP configuration {path} cannot be read: {exc}") from exc
        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise _shape_error(path, f"not valid JSON: {excerpt(str(exc))}") from exc
        if not isinstance(data, dict):
            raise _shape_error(path, 'the top level must be an object with "mcpServers"')
        entries = data.get("mcpServers", data.get("servers"))
        if entries is None:
            raise _shape_error(path, 'no "mcpServers" object')
        if not isinstance(entries, dict):
            raise _shape_error(path, '"mcpServers" must be an object of name -> server')
        environ = os.environ if self._environ is None else self._environ
        allow, deny = set(self._settings.allow), set(self._settings.deny)
        servers: dict[str, ServerSpec] = {}
        invalid: dict[str, str] = {}
        refused: dict[str, str] = {}
        for name, entry in entries.items():
            disabled = entry.get("disabled", False) if isinstance(entry, dict) else False
            if not isinstance(disabled, bool):
                invalid[name] = str(
                    _shape_error(path, f"server {name!r}: disabled must be true or false")
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
            if spec.command is not None and _runs_this_server(spec.command, spec.args):
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
        if loaded is None:
            looked = ", ".join(str(p) for p in self.candidates())
            raise UnknownMcpServer(
                name,
                (),
                hint=f"no MCP configuration file found (looked in {looked}; "
                "set LMSORCH_AGENT_MCP_CONFIG)",
            )
        if name in loaded.servers:
            return loaded.servers[name]
        if name in loaded.refused:
            raise UnknownMcpServer(name, loaded.servers, hint=loaded.refused[name])
        if name in loaded.invalid:
            raise McpConfigError(loaded.invalid[name])
        raise UnknownMcpServer(name, loaded.servers, hint=f"configured in {loaded.path}")
