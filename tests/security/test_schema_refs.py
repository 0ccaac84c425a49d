"""``$ref`` loops and dangling pointers: refused up front, never a crash when checking answers.

Found by a hostile-input probe: ``{"$ref": "#"}`` passed the schema check, then sent
jsonschema into endless recursion on the model's answer, so chat_completion
crashed after the inference had run.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from mcp.types import CallToolResult

from mcp_frontend.checks.json_schema import answer_errors, check_schema

from .server_thread import JSON_ANSWER, ServerThread, message, serve_in_thread

LOOPS: list[dict[str, Any]] = [
    {"$ref": "#"},
    {"$defs": {"a": {"$ref": "#/$defs/a"}}, "$ref": "#/$defs/a"},
    {
        "$defs": {"a": {"$ref": "#/$defs/b"}, "b": {"anyOf": [{"$ref": "#/$defs/a"}]}},
        "$ref": "#/$defs/a",
    },
    {
        "definitions": {"a": {"allOf": [{"not": {"$ref": "#/definitions/a"}}]}},
        "$ref": "#/definitions/a",
    },
]
TREE = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "kids": {"type": "array", "items": {"$ref": "#"}}},
}


def check(schema: dict[str, Any]) -> list[str]:
    return check_schema(schema, max_depth=16, max_bytes=65536).errors


@pytest.mark.parametrize("schema", LOOPS)
def test_a_ref_loop_that_never_descends_is_refused(schema: dict[str, Any]) -> None:
    assert check(schema) == [
        "#: $ref loops back to itself without descending into the value (it would recurse forever)"
    ]


def test_a_recursive_schema_that_descends_is_fine() -> None:
    assert check(TREE) == []
    assert answer_errors({"name": "a", "kids": [{"name": "b", "kids": []}]}, TREE) == []
    assert answer_errors({"name": "a", "kids": [{"name": 5}]}, TREE) == [
        "$['kids'][0]['name']: 5 is not of type 'string'"
    ]


def test_a_dangling_pointer_is_refused() -> None:
    schema = {"type": "object", "properties": {"a": {"$ref": "#/$defs/nope"}}}

    assert check(schema) == ["#/properties/a: $ref '#/$defs/nope' points to nothing in the schema"]


def test_escaped_pointers_resolve() -> None:
    schema = {"properties": {"a/b": {"type": "string"}, "c": {"$ref": "#/properties/a~1b"}}}

    assert check(schema) == []


@pytest.mark.parametrize("schema", [*LOOPS, {"$ref": "#missing-anchor"}])
def test_checking_an_answer_never_raises(schema: dict[str, Any]) -> None:
    [message] = answer_errors({"a": 1}, schema)

    assert message.startswith("$: the schema")
    assert message.endswith("not checked")


def test_an_absurdly_deep_answer_is_not_walked() -> None:
    deep: Any = 1
    for _ in range(5000):
        deep = [deep]

    assert answer_errors(deep, TREE) == ["$: the answer nests deeper than 200 levels; not checked"]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    with serve_in_thread(tmp_path_factory.mktemp("refs")) as running:
        yield running


def chat(server: ServerThread, schema: dict[str, Any]) -> CallToolResult:
    fmt = {"type": "json_schema", "json_schema": {"name": "answer", "schema": schema}}
    return server.call("chat_completion", {"prompt": "json please", "response_format": fmt})


def test_chat_refuses_a_looping_schema_before_the_model_runs(server: ServerThread) -> None:
    result = chat(server, {"$ref": "#"})

    assert "$ref loops back to itself" in message(result)


def test_chat_reports_an_uncheckable_schema_as_a_schema_error(server: ServerThread) -> None:
    result = chat(server, {"$ref": "#missing-anchor"})

    assert not result.is_error
    out = result.structured_content
    assert out is not None
    assert out["content"] == JSON_ANSWER
    assert out["schema_errors"][0].startswith("$: the schema has a $ref that cannot be resolved")


@pytest.mark.parametrize("pattern", ["^(a+)+$", "(a*)*b", "^(\\w+\\s?)*$", "(a{2,})+$", "(x+x+)+y"])
def test_a_catastrophic_pattern_is_not_run_on_the_answer(pattern: str) -> None:
    # Unguarded, re.search backtracks ~2^24 ways here (seconds; 2^40 at 40 characters:
    # hours, with the event loop stalled) and then reports a mismatch.
    schema = {"type": "object", "properties": {"a": {"type": "string", "pattern": pattern}}}

    assert answer_errors({"a": "a" * 24 + "!"}, schema) == []
    report = check_schema(schema, max_depth=16, max_bytes=65536)
    assert report.valid
    assert "nests quantifiers" in report.warnings[0]


@pytest.mark.parametrize("pattern", ["^[a-z]+$", "(ab)+", "^\\d{3}-\\d{4}$", "^([a-z]+)?$"])
def test_ordinary_patterns_are_still_checked(pattern: str) -> None:
    schema = {"type": "object", "properties": {"a": {"type": "string", "pattern": pattern}}}

    assert answer_errors({"a": "!!"}, schema) == [f"$['a']: '!!' does not match {pattern!r}"]
    assert check_schema(schema, max_depth=16, max_bytes=65536).warnings == []


def test_a_catastrophic_property_name_pattern_is_refused() -> None:
    # jsonschema runs these on the answer's keys itself, so they cannot be skipped.
    schema = {"type": "object", "patternProperties": {"^(a+)+$": {"type": "string"}}}

    assert check(schema) == [
        "#/patternProperties: '^(a+)+$' nests quantifiers (exponential time on some names); "
        "use a simpler regex"
    ]
