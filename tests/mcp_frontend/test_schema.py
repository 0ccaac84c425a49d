"""validate_json_schema and the checks behind response formats."""

from __future__ import annotations

from typing import Any

import pytest

from mcp_frontend.checks.json_schema import answer_errors, check_schema
from tests.mcp_frontend.mcp_support import Fake, ok


def nested(levels: int) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string"}
    for _ in range(levels - 1):
        schema = {"type": "object", "properties": {"x": schema}}
    return schema


async def test_a_valid_schema_passes_with_its_depth_and_size(fake: Fake) -> None:
    schema = {
        "type": "object",
        "properties": {"tags": {"type": "array", "items": {"type": ["string", "null"]}}},
        "$defs": {"id": {"type": "integer"}},
    }

    out = ok(await fake.client.call_tool("validate_json_schema", {"schema": schema}))

    assert out == {
        "valid": True,
        "errors": [],
        "warnings": [],
        "depth": 3,
        "size_bytes": out["size_bytes"],
    }
    assert out["size_bytes"] > 50


@pytest.mark.parametrize(
    ("schema", "problem"),
    [
        ({"type": "strin"}, "#/type: 'strin' is not valid under any of the given schemas"),
        ({"type": "object", "required": "a"}, "#/required: 'a' is not of type 'array'"),
        ({"$ref": "https://evil.example/s.json"}, "only local $ref"),
        (nested(17), "nested deeper than 16 levels"),
        ({"type": "object", "description": "x" * 70_000}, "the limit is 65536"),
    ],
)
async def test_an_unusable_schema_is_invalid_with_a_pointed_error(
    fake: Fake, schema: dict[str, Any], problem: str
) -> None:
    out = ok(await fake.client.call_tool("validate_json_schema", {"schema": schema}))

    assert out["valid"] is False
    assert any(problem in e for e in out["errors"]), out["errors"]


async def test_advice_comes_as_warnings(fake: Fake) -> None:
    out = ok(
        await fake.client.call_tool(
            "validate_json_schema",
            {
                "schema": {
                    "type": "object",
                    "properties": {"a": {"type": "array"}, "b": {"type": "object"}},
                }
            },
        )
    )

    assert out["valid"] is True
    assert out["warnings"] == [
        "#/properties/b: object without 'properties'",
        "#/properties/a: array without 'items'",
    ]


def test_a_pathologically_deep_document_is_refused_without_recursion() -> None:
    deep: Any = "leaf"
    for _ in range(50_000):
        deep = [deep]

    report = check_schema({"type": "object", "enum": deep}, max_depth=16, max_bytes=10**9)

    assert report.errors == ["the document nests deeper than 64 JSON levels"]


def test_a_non_object_schema_is_refused() -> None:
    assert check_schema([1], max_depth=4, max_bytes=100).errors == [
        "a schema must be a JSON object, got list"
    ]


def test_answer_errors_point_at_the_offending_value() -> None:
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n", "m"]}

    assert answer_errors({"n": "x"}, schema) == [
        "$['n']: 'x' is not of type 'integer'",
        "$: 'm' is a required property",
    ]
