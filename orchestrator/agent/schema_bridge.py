"""From MCP tools to OpenAI function tools, and model arguments back to MCP calls.

An MCP tool has a ``name``, a ``description`` and an ``inputSchema`` (a JSON
Schema of type object). OpenAI-style APIs want a function name matching
``^[A-Za-z0-9_-]{1,64}$`` and a ``parameters`` object schema; this module makes
both, and checks the arguments a model produced against the tool's schema so a
malformed call is answered with a correction request instead of reaching the
server.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from orchestrator.errors import excerpt
from orchestrator.inference.responses_types import FunctionTool
from orchestrator.inference.types import FunctionDef, Tool

__all__ = ["BridgedTool", "exposed_names", "parse_arguments", "schema_errors", "to_parameters"]

MAX_NAME = 64
MAX_DESCRIPTION = 1024
MAX_SCHEMA_IN_MESSAGE = 2000
MAX_ARGUMENT_DEPTH = 64
"""Deepest nesting of objects and lists accepted in a model's arguments."""
_MAX_ERRORS = 5
_BAD_NAME_CHARS = re.compile(r"[^A-Za-z0-9_-]+")
# Meta keywords some APIs reject and no model needs.
_DROPPED = ("$schema", "$id")


def to_parameters(input_schema: Any) -> dict[str, Any]:
    """Return an object schema usable as function ``parameters`` for ``input_schema``."""
    if not isinstance(input_schema, dict):
        return {"type": "object", "properties": {}}
    params = {k: v for k, v in input_schema.items() if k not in _DROPPED}
    if params.get("type") != "object":
        params["type"] = "object"
    if not isinstance(params.get("properties"), dict):
        params["properties"] = {}
    return params


def _safe_name(text: str) -> str:
    return _BAD_NAME_CHARS.sub("_", text).strip("_") or "tool"


def exposed_names(pairs: Iterable[tuple[str, str]], *, namespaced: bool) -> list[str]:
    """The function name shown to the model for each ``(server, tool)`` pair, in order.

    ``server__tool`` when ``namespaced``, else the bare tool name; characters an
    API rejects become ``_``, names are cut to 64 characters, and a clash gets a
    ``_2``, ``_3`` ... suffix so every name is unique.
    """
    taken: set[str] = set()
    out = []
    for server, tool in pairs:
        base = f"{_safe_name(server)}__{_safe_name(tool)}" if namespaced else _safe_name(tool)
        name = base[:MAX_NAME]
        n = 2
        while name in taken:
            suffix = f"_{n}"
            name = base[: MAX_NAME - len(suffix)] + suffix
            n += 1
        taken.add(name)
        out.append(name)
    return out


def _too_deep(value: Any) -> bool:
    """Whether ``value`` nests objects and lists deeper than :data:`MAX_ARGUMENT_DEPTH`."""
    level: list[Any] = [value]
    for _ in range(MAX_ARGUMENT_DEPTH):
        level = [
            child
            for item in level
            if isinstance(item, dict | list)
            for child in (item.values() if isinstance(item, dict) else item)
        ]
        if not level:
            return False
    return any(isinstance(item, dict | list) for item in level)


def parse_arguments(arguments: str) -> tuple[dict[str, Any] | None, str | None]:
    """Decode the model's argument string: ``(arguments, None)`` or ``(None, problem)``.

    An empty string means no arguments (``{}``); anything but a JSON object is a
    problem, and so is nesting deeper than :data:`MAX_ARGUMENT_DEPTH` (which
    would exhaust the recursion of the decoder, the validator or the SDK).
    """
    if not arguments.strip():
        return {}, None
    too_deep = (
        f"the arguments nest objects or lists deeper than {MAX_ARGUMENT_DEPTH} levels; "
        "send a flatter JSON object"
    )
    try:
        value = json.loads(arguments)
    except RecursionError:
        return None, too_deep
    except ValueError as exc:
        return None, f"the arguments are not valid JSON ({exc})"
    if not isinstance(value, dict):
        return None, f"the arguments must be a JSON object, not {type(value).__name__}"
    if _too_deep(value):
        return None, too_deep
    return value, None


def schema_errors(validator: Any, arguments: dict[str, Any]) -> list[str]:
    """Where ``arguments`` break the schema (at most 5 messages; empty if they conform)."""
    if validator is None:
        return []
    found: list[str] = []
    try:
        for error in validator.iter_errors(arguments):
            where = "$" + "".join(f"[{p!r}]" for p in error.absolute_path)
            found.append(f"{where}: {excerpt(error.message, 300)}")
            if len(found) == _MAX_ERRORS:
                break
    except Exception:  # noqa: BLE001 - an unresolvable $ref, a runaway recursion ...
        # The server's schema is broken, not the model's call: let the server judge.
        return []
    return found


def _validator(schema: dict[str, Any]) -> Any:
    """A validator for ``schema``, or ``None`` when the server's schema itself is invalid."""
    # Imported here, when an agent first checks a call: jsonschema (with referencing
    # and rpds) costs ~20 ms that ``lmsorch serve`` need not pay before ``tools/list``.
    import jsonschema  # type: ignore[import-untyped]  # ships no py.typed marker

    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    try:
        cls.check_schema(schema)
    except jsonschema.SchemaError:
        return None  # the server's problem: let the server judge its own arguments
    return cls(schema)


@dataclass(frozen=True)
class BridgedTool:
    """One MCP tool as the model sees it, with how to call it.

    Attributes:
        name: the function name shown to the model.
        server: the MCP server that has the tool.
        remote_name: the tool's name on that server.
        description: shown to the model (cut to 1024 characters).
        parameters: the object schema shown to the model.
    """

    name: str
    server: str
    remote_name: str
    description: str
    parameters: dict[str, Any]
    validator: Any = field(default=None, compare=False, repr=False)

    @classmethod
    def build(
        cls, *, name: str, server: str, remote_name: str, description: str | None, schema: Any
    ) -> BridgedTool:
        """Bridge one listed MCP tool (``schema`` is its ``inputSchema``)."""
        params = to_parameters(schema)
        text = (description or "").strip() or f"The {remote_name} tool of MCP server {server}."
        if len(text) > MAX_DESCRIPTION:
            text = text[: MAX_DESCRIPTION - 1] + "…"
        return cls(name, server, remote_name, text, params, _validator(params))

    def chat_tool(self) -> Tool:
        """The chat-completions (nested ``function``) form."""
        return Tool(
            function=FunctionDef(
                name=self.name, description=self.description, parameters=self.parameters
            )
        )

    def responses_tool(self) -> FunctionTool:
        """The Responses API (flat) form."""
        return FunctionTool(
            name=self.name, description=self.description, parameters=self.parameters
        )

    def correction(self, problem: str) -> str:
        """A message asking the model to call this tool again, correctly."""
        schema = json.dumps(self.parameters, ensure_ascii=False)
        if len(schema) > MAX_SCHEMA_IN_MESSAGE:
            schema = schema[: MAX_SCHEMA_IN_MESSAGE - 1] + "…"
        return (
            f"Invalid arguments for tool {self.name!r}: {problem}. "
            f"Call it again with a JSON object matching this schema: {schema}"
        )
