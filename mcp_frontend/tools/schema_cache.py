"""Tool schemas kept across starts, so a start does not derive them again.

The SDK registers a tool by building pydantic models of its arguments and its
result from the function's signature, then deriving both JSON schemas from
them: 42 ms for our 19 tools, the largest single step between a bare SDK
server's start and ours (``docs/performance.md``, start-up). The schemas change
only when the code or the libraries that derive them do, so this keeps them in
a file under the user's cache directory, named by a fingerprint of both (every
source file of ours by path, size and modification time, as Python's own
bytecode cache does; the Python, pydantic and SDK versions), with each tool's
signature beside its schemas (defaults are values of the running process).

A tool found there is registered with its cached schemas and builds its models
on its first call, exactly as the SDK would have at registration; any other is
built at once and written for the next start. A missing, unreadable or
malformed file, or a cache directory that cannot be written, only costs the
time: nothing here ever fails a start.
"""

from __future__ import annotations

import hashlib
import inspect
import os
import sys
import tempfile
from collections.abc import Callable
from functools import cache, cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec
import pydantic
import pydantic_core
import structlog
from mcp.server.mcpserver.tools import Tool, ToolManager
from mcp.server.mcpserver.utilities import func_metadata
from mcp.shared._callable_inspection import is_async_callable  # the SDK's own test, as in Tool
from mcp.types import Icon, ToolAnnotations
from pydantic import Field

if TYPE_CHECKING:
    from mcp.server.context import LifespanContextT, RequestT
    from mcp.server.mcpserver.context import Context

__all__ = ["CachedSchemaTool", "SchemaCache", "SchemaCachingToolManager", "default_cache_dir"]

_log = structlog.get_logger("mcp_frontend.schema_cache")

_KEEP = 8  # fingerprints kept: a developer's edits each make a new one


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/lmstudio-orchestrator``, or ``~/.cache/lmstudio-orchestrator``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "lmstudio-orchestrator"


class _Entry(msgspec.Struct, frozen=True):
    signature: str
    parameters: dict[str, Any]
    output_schema: dict[str, Any] | None
    context_kwarg: str | None


_File = dict[str, _Entry]  # tool name -> its schemas


@cache
def fingerprint() -> str:
    """What the schemas are derived from: our sources, and the deriving libraries' versions."""
    digest = hashlib.sha256()
    digest.update(f"{sys.version}|{pydantic.VERSION}|{pydantic_core.__version__}\n".encode())
    sdk = Path(func_metadata.__file__).parents[1]  # mcp/server/mcpserver: the SDK's derivation
    ours = Path(__file__).parents[2]  # both our packages, side by side in one distribution
    packages = [sdk, ours / "orchestrator", ours / "mcp_frontend"]
    for root in packages:
        for folder, subfolders, files in os.walk(root):
            subfolders[:] = sorted(d for d in subfolders if d != "__pycache__")
            for name in sorted(f for f in files if f.endswith(".py")):
                path = os.path.join(folder, name)
                stat = os.stat(path)
                digest.update(f"{path}:{stat.st_size}:{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:20]


class CachedSchemaTool(Tool):
    """A tool registered with cached schemas; its pydantic models are built on its first call.

    Its ``fn_metadata`` is never set: the SDK reads it only in :meth:`run`, which
    this hands to the tool as the SDK builds it.
    """

    structured_output: bool | None = Field(default=None, exclude=True)
    cached_output_schema: dict[str, Any] | None = Field(default=None, exclude=True)

    @cached_property
    def output_schema(self) -> dict[str, Any] | None:
        """The cached output schema (the SDK derives it from ``fn_metadata``)."""
        return self.cached_output_schema

    @cached_property
    def built(self) -> Tool:
        """The tool as the SDK builds it from the function, built once."""
        return Tool.from_function(
            self.fn,
            name=self.name,
            title=self.title,
            description=self.description,
            annotations=self.annotations,
            icons=self.icons,
            meta=self.meta,
            structured_output=self.structured_output,
        )

    async def run(
        self,
        arguments: dict[str, Any],
        context: Context[LifespanContextT, RequestT],
        convert_result: bool = False,
    ) -> Any:
        """Run the tool as the SDK-built one does (see ``Tool.run``)."""
        return await self.built.run(arguments, context, convert_result=convert_result)


class SchemaCache:
    """The tool schemas of one fingerprint, read once and written after registration.

    Args:
        directory: where the cache files live; None keeps nothing across starts.
    """

    def __init__(self, directory: Path | None) -> None:
        self._path = None if directory is None else directory / f"tool-schemas-{fingerprint()}.json"
        self._entries: _File = self._read()
        self._changed = False
        self.hits = 0  # tools registered from the cache
        self.derived = 0  # tools whose schemas the SDK derived here

    def _read(self) -> _File:
        if self._path is None:
            return {}
        try:
            return msgspec.json.decode(self._path.read_bytes(), type=_File)
        except (OSError, msgspec.ValidationError, msgspec.DecodeError):
            return {}  # none yet, or unreadable: derived again and rewritten

    def tool(
        self,
        fn: Callable[..., Any],
        *,
        name: str | None,
        title: str | None,
        description: str | None,
        annotations: ToolAnnotations | None,
        icons: list[Icon] | None,
        meta: dict[str, Any] | None,
        structured_output: bool | None,
    ) -> Tool:
        """The tool for ``fn``: from the cache when its signature matches, else built now."""
        tool_name = name or fn.__name__
        signature = f"{structured_output}|{inspect.signature(fn)}"
        entry = self._entries.get(tool_name)
        if entry is not None and entry.signature == signature:
            self.hits += 1
            return CachedSchemaTool.model_construct(
                fn=fn,
                name=tool_name,
                title=title,
                description=description or fn.__doc__ or "",
                parameters=entry.parameters,
                is_async=is_async_callable(fn),
                context_kwarg=entry.context_kwarg,
                annotations=annotations,
                icons=icons,
                meta=meta,
                structured_output=structured_output,
                cached_output_schema=entry.output_schema,
            )
        self.derived += 1
        tool = Tool.from_function(
            fn,
            name=name,
            title=title,
            description=description,
            annotations=annotations,
            icons=icons,
            meta=meta,
            structured_output=structured_output,
        )
        if not tool.resolved_params:  # resolvers are planned at registration: never cached
            self._entries[tool.name] = _Entry(
                signature, tool.parameters, tool.output_schema, tool.context_kwarg
            )
            self._changed = True
        return tool

    def save(self) -> None:
        """Write the schemas if any tool was derived, replacing the file at once; prune old ones."""
        _log.debug("tool_schemas", cached=self.hits, derived=self.derived, path=str(self._path))
        if self._path is None or not self._changed:
            return
        folder = self._path.parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=folder, suffix=".part", delete=False) as part:
                part.write(msgspec.json.encode(self._entries))
            os.replace(part.name, self._path)  # a reader sees the old file or the new, whole
            self._changed = False
            older = sorted(folder.glob("tool-schemas-*.json"), key=lambda p: p.stat().st_mtime)
            for stale in older[:-_KEEP]:
                stale.unlink(missing_ok=True)
        except OSError as exc:
            _log.debug("schema_cache_not_written", path=str(self._path), error=str(exc))


class SchemaCachingToolManager(ToolManager):
    """The SDK's tool manager, registering tools through a :class:`SchemaCache`.

    Descriptions are also taken as written, not as indented in the source: the SDK
    takes a docstring verbatim, so every line after the first kept the function's
    indentation.
    """

    def __init__(self, schemas: SchemaCache, *, warn_on_duplicate_tools: bool = True) -> None:
        super().__init__(warn_on_duplicate_tools=warn_on_duplicate_tools)
        self.schemas = schemas

    def add_tool(
        self,
        fn: Callable[..., Any],
        name: str | None = None,
        title: str | None = None,
        description: str | None = None,
        annotations: ToolAnnotations | None = None,
        icons: list[Icon] | None = None,
        meta: dict[str, Any] | None = None,
        structured_output: bool | None = None,
    ) -> Tool:
        """Add a tool, its schemas from the cache where they are current (see the SDK's)."""
        doc = description if description is not None else fn.__doc__
        tool = self.schemas.tool(
            fn,
            name=name,
            title=title,
            description=inspect.cleandoc(doc or ""),
            annotations=annotations,
            icons=icons,
            meta=meta,
            structured_output=structured_output,
        )
        existing = self.get_tool(tool.name)
        if existing is not None:
            if self.warn_on_duplicate_tools:
                _log.warning("duplicate_tool", tool=tool.name)
            return existing
        self._tools[tool.name] = tool
        return tool
