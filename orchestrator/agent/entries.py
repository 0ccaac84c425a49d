"""One ``mcpServers`` entry of an ``mcp.json`` file, parsed into a :class:`ServerSpec`.

The format is Claude Code's and LM Studio's (see :mod:`.discovery` for where the
file is found)::

    {"mcpServers": {
        "git":    {"command": "uvx", "args": ["mcp-server-git"], "env": {"X": "${X}"}, "cwd": "."},
        "remote": {"type": "http", "url": "https://host/mcp",
                   "headers": {"Authorization": "Bearer ${TOKEN}"}}}}

``type`` may be ``stdio``, ``http`` or ``streamable-http`` (both the streamable
HTTP transport); without it, ``command`` means stdio and ``url`` means HTTP.
``${VAR}`` and ``${VAR:-default}`` are expanded in ``command``, ``args``,
``env``, ``cwd``, ``url`` and ``headers`` from the environment (the default
applies when the variable is unset or empty); an undefined variable without a
default makes that entry unusable, with an error naming the server and the
variable. A relative ``cwd`` is relative to the file's directory.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path, PurePath
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

import msgspec

from orchestrator.agent.errors import McpConfigError
from orchestrator.errors import excerpt
from orchestrator.identity import SERVER_NAME

__all__ = ["ServerSpec", "expand_vars", "parse_entry", "runs_this_server", "shape_error"]

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_HTTP_TYPES = {"http", "streamable-http", "streamable_http", "streamableHttp"}
_STDIO_TYPES = {"stdio"}
_SELF_NAMES = {"lmsorch", SERVER_NAME, "mcp_frontend"}


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


def runs_this_server(command: str, args: tuple[str, ...]) -> bool:
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


def shape_error(path: Path, problem: str) -> McpConfigError:
    """An error about the file at ``path``: ``problem`` prefixed with where it is."""
    return McpConfigError(f"MCP configuration {path}: {problem}")


def _strings(value: Any, *, what: str, path: Path, server: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise shape_error(path, f"server {server!r}: {what} must be a list of strings")
    return tuple(value)


def _string_map(value: Any, *, what: str, path: Path, server: str) -> dict[str, str]:
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str | int | float | bool) for k, v in value.items()
    ):
        raise shape_error(path, f"server {server!r}: {what} must be an object of strings")
    return {k: v if isinstance(v, str) else json.dumps(v) for k, v in value.items()}


def parse_entry(name: str, entry: Any, *, path: Path, environ: Mapping[str, str]) -> ServerSpec:
    """Turn one ``mcpServers`` entry into a :class:`ServerSpec`.

    Raises:
        McpConfigError: the entry has the wrong shape or uses an undefined variable.
    """
    if not isinstance(entry, dict):
        raise shape_error(path, f"server {name!r} must be an object")
    kind = entry.get("type")
    if kind is not None and kind not in _HTTP_TYPES | _STDIO_TYPES:
        raise shape_error(
            path,
            f"server {name!r}: unsupported type {excerpt(repr(kind), 40)} "
            "(supported: stdio, http, streamable-http)",
        )
    if kind in _HTTP_TYPES or (kind is None and "url" in entry and "command" not in entry):
        url = entry.get("url")
        if not isinstance(url, str) or not url:
            raise shape_error(path, f"server {name!r}: an HTTP server needs a 'url' string")
        headers = _string_map(entry.get("headers", {}), what="headers", path=path, server=name)
        expanded = expand_vars(url, environ, server=name, field="url")
        if urlsplit(expanded).scheme not in ("http", "https"):
            raise shape_error(path, f"server {name!r}: url must start with http:// or https://")
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
        raise shape_error(
            path, f"server {name!r} needs a 'command' string (stdio) or a 'url' (HTTP)"
        )
    args = _strings(entry.get("args", []), what="args", path=path, server=name)
    env = _string_map(entry.get("env", {}), what="env", path=path, server=name)
    cwd = entry.get("cwd")
    if cwd is not None and not isinstance(cwd, str):
        raise shape_error(path, f"server {name!r}: cwd must be a string")
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
