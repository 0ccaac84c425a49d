"""Checking JSON schemas before they reach a model, and answers against them.

A schema is checked for size and nesting first, without recursion (a hostile
document cannot exhaust the stack), then against its meta-schema (Draft
2020-12 unless ``$schema`` names another draft). Only local ``$ref``s
(``#/...``) are accepted: nothing is ever fetched. Each must point at a part of
the document, and ``$ref`` chains must not loop back without descending into
the value (``{"$ref": "#"}`` would recurse forever on any answer); recursive
schemas that descend (a tree whose ``children`` items are ``{"$ref": "#"}``) are
fine. Checking an answer never raises: a schema or answer that cannot be
checked is reported as one of its errors. A ``pattern`` that nests quantifiers
(``(a+)+``) could backtrack for hours on a crafted answer and would block the
server's event loop, so answers are not checked against it (a warning says so).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

import msgspec

if TYPE_CHECKING:
    import jsonschema  # type: ignore[import-untyped]  # ships no py.typed marker

__all__ = ["SchemaReport", "answer_errors", "check_schema", "risky_pattern"]

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
# Keywords that apply their subschemas to the same value (not to a part of it):
# a $ref cycle through these alone never terminates.
_IN_PLACE_ONE = ("not", "if", "then", "else")
_IN_PLACE_MANY = ("anyOf", "oneOf", "allOf")
_TYPES = {"object", "array", "string", "number", "integer", "boolean", "null"}
_MAX_ERRORS = 10
_MAX_ANSWER_DEPTH = 200
_MISSING = object()
# A group containing a quantifier, itself quantified: (a+)+, (\w*x)*, (a{2,})+ ...
_NESTED_QUANTIFIER = re.compile(r"\((?:[^()\\]|\\.)*[*+}](?:[^()\\]|\\.)*\)\s*(?:[*+]|\{\d*,)")


def risky_pattern(pattern: str) -> bool:
    """Whether ``pattern`` nests quantifiers, which can make a regex take exponential time."""
    return _NESTED_QUANTIFIER.search(pattern) is not None


def _pattern_unless_risky(
    validator: Any, pattern: Any, instance: Any, schema: Any
) -> Iterator[jsonschema.ValidationError]:
    if not isinstance(pattern, str) or not validator.is_type(instance, "string"):
        return
    if not risky_pattern(pattern) and not re.search(pattern, instance):
        import jsonschema  # loaded already by answer_errors

        yield jsonschema.ValidationError(f"{instance[:200]!r} does not match {pattern!r}")


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
        # Property-name regexes run inside jsonschema (patternProperties, additionalProperties),
        # where they cannot be skipped: refuse the risky ones.
        names = node.get("patternProperties")
        for key in names if isinstance(names, dict) else ():
            if risky_pattern(key):
                report.errors.append(
                    f"{path}/patternProperties: {key[:100]!r} nests quantifiers (exponential "
                    "time on some names); use a simpler regex"
                )
        pattern = node.get("pattern")
        if isinstance(pattern, str) and risky_pattern(pattern):
            report.warnings.append(
                f"{path}: pattern {pattern[:100]!r} nests quantifiers (exponential time on some "
                "strings); answers are not checked against it"
            )
        stack.extend((p, sub, depth + 1) for p, sub in _subschemas(node, path))
    return True


def _pointer(document: dict[str, Any], ref: str) -> Any:
    """Resolve a local JSON-pointer ``$ref`` in ``document``; _MISSING when it points nowhere."""
    node: Any = document
    for raw in ref[2:].split("/") if ref != "#" else []:
        part = unquote(raw).replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return _MISSING
    return node


def _in_place(node: dict[str, Any], document: dict[str, Any]) -> Iterator[Any]:
    """Subschemas applied to the same value as ``node`` (its $ref target included)."""
    ref = node.get("$ref")
    if isinstance(ref, str) and (ref == "#" or ref.startswith("#/")):
        yield _pointer(document, ref)
    for key in _IN_PLACE_ONE:
        yield node.get(key)
    for key in _IN_PLACE_MANY:
        if isinstance(node.get(key), list):
            yield from node[key]


def _check_refs(schema: dict[str, Any], report: SchemaReport) -> None:
    """Report local $refs that point nowhere, and $ref loops that never descend."""
    nodes: list[tuple[str, dict[str, Any]]] = []
    stack: list[tuple[str, Any]] = [("#", schema)]
    while stack:
        path, node = stack.pop()
        if isinstance(node, dict):
            if path != "#" and "$id" in node:
                return  # another base URI: pointers resolve elsewhere, leave it to jsonschema
            nodes.append((path, node))
            stack.extend(_subschemas(node, path))
    for path, node in nodes:
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/") and _pointer(schema, ref) is _MISSING:
            report.errors.append(f"{path}: $ref {ref!r} points to nothing in the schema")
    if report.errors:
        return
    # Iterative depth-first search for a cycle among in-place edges (white/grey/black).
    state: dict[int, int] = {}
    for _, start in nodes:
        if state.get(id(start)):
            continue
        state[id(start)] = 1
        walk: list[tuple[dict[str, Any], Iterator[Any]]] = [(start, _in_place(start, schema))]
        while walk:
            node, edges = walk[-1]
            child = next(edges, _MISSING)
            if child is _MISSING:
                state[id(node)] = 2
                walk.pop()
            elif isinstance(child, dict):
                seen = state.get(id(child), 0)
                if seen == 1:
                    report.errors.append(
                        "#: $ref loops back to itself without descending into the value "
                        "(it would recurse forever)"
                    )
                    return
                if seen == 0:
                    state[id(child)] = 1
                    walk.append((child, _in_place(child, schema)))


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
    _check_refs(schema, report)
    kind = schema.get("type")
    if kind is None and not any(k in schema for k in ("$ref", "anyOf", "oneOf", "allOf", "enum")):
        report.warnings.append("#: no 'type' at the root")
    elif isinstance(kind, str) and kind in _TYPES and kind != "object":
        report.warnings.append("#: the root is not an object; some servers require one")
    # Imported here, when a schema is first checked: jsonschema (with referencing and
    # rpds) costs ~20 ms that ``lmsorch serve`` need not pay before ``tools/list``.
    import jsonschema

    validator = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    try:
        validator.check_schema(schema)
    except jsonschema.SchemaError as exc:
        where = "#/" + "/".join(str(p) for p in exc.absolute_path)
        report.errors.append(f"{where.rstrip('/')}: {exc.message}")
    return report


def answer_errors(instance: Any, schema: dict[str, Any]) -> list[str]:
    """Return where ``instance`` breaks ``schema`` (at most 10 messages; empty if it conforms).

    Never raises: an answer nested too deeply to check, or a schema jsonschema
    cannot apply (an unresolvable or endlessly recursive ``$ref`` that slipped
    past :func:`check_schema`), is reported as the single error.
    """
    if not _json_depth(instance, _MAX_ANSWER_DEPTH):
        return [f"$: the answer nests deeper than {_MAX_ANSWER_DEPTH} levels; not checked"]
    # Imported here rather than at start-up, as in check_schema.
    import jsonschema
    import referencing.exceptions

    base = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    cls = jsonschema.validators.extend(base, {"pattern": _pattern_unless_risky})
    found = []
    try:
        for error in cls(schema).iter_errors(instance):
            where = "$" + "".join(f"[{p!r}]" for p in error.absolute_path)
            found.append(f"{where}: {error.message}")
            if len(found) == _MAX_ERRORS:
                break
    except RecursionError:
        return ["$: the schema recurses without end on this answer; not checked"]
    except referencing.exceptions.Unresolvable as exc:
        return [f"$: the schema has a $ref that cannot be resolved ({str(exc)[:200]}); not checked"]
    return found
