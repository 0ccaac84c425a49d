"""Checking JSON schemas before they reach a model, and answers against them.

A schema is checked for size and nesting first, without recursion (a hostile
document cannot exhaust the stack), then against its meta-schema (Draft
2020-12 unless ``$schema`` names another draft). Only local ``$ref``s
(``#/...``) are accepted: nothing is ever fetched.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import jsonschema  # type: ignore[import-untyped]  # ships no py.typed marker
import msgspec

__all__ = ["SchemaReport", "answer_errors", "check_schema"]

# Keywords whose value is a schema, a list of schemas, or a map of name -> schema.
_ONE = (
    "items",
    "additionalProperties",
    "not",
    "if",
    "then",
    "else",
    "contains",
    "propertyNames",
    "unevaluatedItems",
    "unevaluatedProperties",
    "additionalItems",
)
_MANY = ("anyOf", "oneOf", "allOf", "prefixItems")
_MAP = ("properties", "patternProperties", "$defs", "definitions", "dependentSchemas")
_TYPES = {"object", "array", "string", "number", "integer", "boolean", "null"}
_MAX_ERRORS = 10


@dataclass
class SchemaReport:
    """The outcome of :func:`check_schema`."""

    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    depth: int = 0
    size_bytes: int = 0

    @property
    def valid(self) -> bool:
        """True when there is no error (warnings are advice)."""
        return not self.errors


def _subschemas(node: dict[str, Any], path: str) -> Iterator[tuple[str, Any]]:
    for key in _ONE:
        if key in node:
            yield f"{path}/{key}", node[key]
    for key in _MANY:
        if isinstance(node.get(key), list):
            for i, sub in enumerate(node[key]):
                yield f"{path}/{key}/{i}", sub
    for key in _MAP:
        if isinstance(node.get(key), dict):
            for name, sub in node[key].items():
                yield f"{path}/{key}/{name}", sub
    if isinstance(node.get("items"), list):  # draft 4-7 tuple form
        for i, sub in enumerate(node["items"]):
            yield f"{path}/items/{i}", sub


def _walk(schema: dict[str, Any], report: SchemaReport, max_depth: int) -> bool:
    """Measure depth and lint each subschema; False when too deep to check further."""
    stack: list[tuple[str, Any, int]] = [("#", schema, 1)]
    while stack:
        path, node, depth = stack.pop()
        report.depth = max(report.depth, depth)
        if depth > max_depth:
            report.errors.append(f"{path}: nested deeper than {max_depth} levels")
            return False
        if not isinstance(node, dict):
            continue
        ref = node.get("$ref")
        if isinstance(ref, str) and not ref.startswith("#"):
            report.errors.append(f"{path}: only local $ref ('#/...') is supported, got {ref!r}")
        kind = node.get("type")
        kinds = set(kind) if isinstance(kind, list) else {kind}
        if "object" in kinds and "properties" not in node and "$ref" not in node:
            report.warnings.append(f"{path}: object without 'properties'")
        if "array" in kinds and "items" not in node and "prefixItems" not in node:
            report.warnings.append(f"{path}: array without 'items'")
        stack.extend((p, sub, depth + 1) for p, sub in _subschemas(node, path))
    return True


def _json_depth(value: Any, limit: int) -> bool:
    """True if ``value`` nests at most ``limit`` containers deep (checked iteratively)."""
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return False
        if isinstance(node, dict):
            stack.extend((v, depth + 1) for v in node.values())
        elif isinstance(node, list):
            stack.extend((v, depth + 1) for v in node)
    return True


def check_schema(schema: Any, *, max_depth: int, max_bytes: int) -> SchemaReport:
    """Check that ``schema`` is a usable JSON schema within the limits.

    Args:
        schema: the decoded schema document.
        max_depth: deepest subschema nesting allowed.
        max_bytes: largest encoded size allowed.
    """
    report = SchemaReport()
    if not isinstance(schema, dict):
        report.errors.append(f"a schema must be a JSON object, got {type(schema).__name__}")
        return report
    # Annotations and keyword maps add JSON levels between schema levels; 4x is generous.
    if not _json_depth(schema, max_depth * 4):
        report.errors.append(f"the document nests deeper than {max_depth * 4} JSON levels")
        return report
    report.size_bytes = len(msgspec.json.encode(schema))
    if report.size_bytes > max_bytes:
        report.errors.append(f"the schema is {report.size_bytes} bytes; the limit is {max_bytes}")
        return report
    if not _walk(schema, report, max_depth):
        return report
    kind = schema.get("type")
    if kind is None and not any(k in schema for k in ("$ref", "anyOf", "oneOf", "allOf", "enum")):
        report.warnings.append("#: no 'type' at the root")
    elif isinstance(kind, str) and kind in _TYPES and kind != "object":
        report.warnings.append("#: the root is not an object; some servers require one")
    validator = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    try:
        validator.check_schema(schema)
    except jsonschema.SchemaError as exc:
        where = "#/" + "/".join(str(p) for p in exc.absolute_path)
        report.errors.append(f"{where.rstrip('/')}: {exc.message}")
    return report


def answer_errors(instance: Any, schema: dict[str, Any]) -> list[str]:
    """Return where ``instance`` breaks ``schema`` (at most 10 messages; empty if it conforms)."""
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    found = []
    for error in cls(schema).iter_errors(instance):
        where = "$" + "".join(f"[{p!r}]" for p in error.absolute_path)
        found.append(f"{where}: {error.message}")
        if len(found) == _MAX_ERRORS:
            break
    return found
