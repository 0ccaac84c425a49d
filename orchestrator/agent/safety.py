"""What an agent's tools may touch: working directories and file paths inside the roots.

Rules, applied before a server is started and before every tool call:

* A stdio server's working directory (``cwd``) must lie inside one of
  ``AgentSettings.roots`` (default: the current directory). A server without a
  ``cwd`` runs in the first root.
* A tool argument that looks like a file path must resolve inside a root too.
  "Looks like a path" is a heuristic on the argument's *name* (see
  :func:`is_path_like`): ``path``, ``paths``, ``file``, ``files``, ``filename``,
  ``filepath``, ``dir``, ``directory``, ``folder``, ``cwd``, ``root``, ``repo``,
  ``repo_path``, ``source``, ``destination``, ``src``, ``dst``, ``dest``, and any
  name ending in ``_path``, ``_paths``, ``_dir``, ``_dirs``, ``_file`` or ``_files``
  (camelCase names are read as snake_case). Its value (a string or a list of
  strings, at any depth of nested objects) is checked; values with a URL scheme
  other than ``file://`` are not paths and are left alone. A relative path is
  taken relative to the server's working directory.
* ``~`` is expanded, then symlinks and ``..`` are resolved, before the check, so
  neither a link nor a ``../..`` walks out of a root.
* Credentials locations are refused even inside a root: any path with a
  component ``.ssh``, ``.aws``, ``.gnupg``, ``.kube``, ``.docker``, ``.azure``,
  ``.password-store``, ``.config/gcloud`` or ``.config/gh``, and the files
  ``.netrc``, ``.git-credentials``, ``.pypirc``, ``.npmrc``. Dotenv files
  (``.env``, ``.env.local``, ...) are refused too, because projects keep secrets
  in them; ``.env.example``, ``.env.sample`` and ``.env.template`` are allowed.

The heuristic cannot see paths a tool derives itself (a shell command string, a
glob): run such servers with a ``cwd`` inside the roots and prefer servers that
take their own root arguments (``mcp-server-git --repository``, the filesystem
server's allowed directories).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from orchestrator.agent.errors import PathNotAllowed

__all__ = [
    "check_arguments",
    "check_path",
    "credential_reason",
    "is_path_like",
    "working_roots",
]

_PATH_NAMES = frozenset(
    {
        "path",
        "paths",
        "file",
        "files",
        "filename",
        "filenames",
        "filepath",
        "dir",
        "dirs",
        "directory",
        "directories",
        "folder",
        "cwd",
        "root",
        "repo",
        "repo_path",
        "source",
        "destination",
        "src",
        "dst",
        "dest",
    }
)
_PATH_SUFFIXES = ("_path", "_paths", "_dir", "_dirs", "_file", "_files")
_SECRET_DIRS = frozenset(
    {".ssh", ".aws", ".gnupg", ".kube", ".docker", ".azure", ".password-store"}
)
_SECRET_CONFIG_DIRS = frozenset({"gcloud", "gh"})  # under .config
_SECRET_FILES = frozenset({".netrc", ".git-credentials", ".pypirc", ".npmrc"})
_DOTENV_OK = frozenset({".env.example", ".env.sample", ".env.template"})
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_MAX_DEPTH = 8


def is_path_like(name: str) -> bool:
    """Whether an argument called ``name`` is taken to hold a file path (see module doc)."""
    snake = _CAMEL.sub("_", name).lower().replace("-", "_")
    return snake in _PATH_NAMES or snake.endswith(_PATH_SUFFIXES)


def credential_reason(path: Path) -> str | None:
    """Why ``path`` (already resolved) is a credentials location, or ``None`` if it is not."""
    parts = path.parts
    for i, part in enumerate(parts):
        if part in _SECRET_DIRS:
            return f"{part} holds credentials"
        if part == ".config" and i + 1 < len(parts) and parts[i + 1] in _SECRET_CONFIG_DIRS:
            return f".config/{parts[i + 1]} holds credentials"
        if part in _SECRET_FILES:
            return f"{part} holds credentials"
    name = path.name
    if (name == ".env" or name.startswith(".env.")) and name not in _DOTENV_OK:
        return f"{name} is a dotenv file (usually secrets)"
    return None


def check_path(path: str | os.PathLike[str], roots: Sequence[Path], *, base: Path) -> Path:
    """Resolve ``path`` (relative to ``base``) and return it if it is allowed.

    Args:
        path: the path as given (``~`` and ``file://`` accepted).
        roots: the allowed roots, already resolved.
        base: the directory a relative path is relative to.

    Raises:
        PathNotAllowed: it resolves outside every root, or to a credentials location.
    """
    text = os.fspath(path)
    if text.startswith("file://"):
        text = text.removeprefix("file://")
    shown = [str(r) for r in roots]
    try:
        candidate = Path(text).expanduser()
        resolved = (base / candidate).resolve()
    except (OSError, RuntimeError, ValueError) as exc:  # a symlink loop, a NUL byte
        raise PathNotAllowed(text, shown, reason=f"it cannot be resolved ({exc})") from exc
    reason = credential_reason(resolved)
    if reason is not None:
        raise PathNotAllowed(text, shown, reason=reason)
    if not any(resolved.is_relative_to(root) for root in roots):
        raise PathNotAllowed(text, shown)
    return resolved


def working_roots(directories: Sequence[str], roots: Sequence[Path]) -> tuple[Path, ...]:
    """The roots of a run given its ``working_directory`` (one directory or several).

    Each directory must be an existing directory inside ``roots`` (a relative one
    is taken relative to the first root). The run is then confined to them: they
    become its roots, and the first one is where its stdio servers start, so a
    server given ``.`` as its allowed directory (the filesystem preset) gets it.

    Raises:
        PathNotAllowed: a directory is outside the roots, a credentials location,
            or not an existing directory.
    """
    narrowed: list[Path] = []
    for directory in directories:
        path = check_path(directory, roots, base=roots[0])
        if not path.is_dir():
            shown = [str(r) for r in roots]
            raise PathNotAllowed(directory, shown, reason="it is not an existing directory")
        narrowed.append(path)
    return tuple(dict.fromkeys(narrowed))


def _path_values(arguments: Any, depth: int = 0) -> Iterator[str]:
    """Every string under a path-like key, at any depth of nested objects and lists."""
    if depth > _MAX_DEPTH:
        return
    if isinstance(arguments, dict):
        for key, value in arguments.items():
            if isinstance(key, str) and is_path_like(key):
                if isinstance(value, str):
                    yield value
                elif isinstance(value, list):
                    yield from (v for v in value if isinstance(v, str))
            if isinstance(value, dict | list):
                yield from _path_values(value, depth + 1)
    elif isinstance(arguments, list):
        for item in arguments:
            yield from _path_values(item, depth + 1)


def check_arguments(arguments: Any, roots: Sequence[Path], *, base: Path) -> None:
    """Check every path-like argument of a tool call (see module doc).

    Raises:
        PathNotAllowed: for the first path that is not allowed.
    """
    for value in _path_values(arguments):
        if not value or (_SCHEME.match(value) and not value.startswith("file://")):
            continue
        check_path(value, roots, base=base)
