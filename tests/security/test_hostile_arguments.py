"""Every MCP tool, fuzzed with hostile arguments through the real server.

The tool list is read from the server at collection time, so a tool added
later is fuzzed (and must have a hostile pool for each of its arguments)
without anyone remembering to add it here. Each call must come back as a
result or an ``is_error`` result carrying a message: never a crash (the SDK's
bare "Error executing tool X" for an unexpected exception, which it logs with
its traceback), never a traceback in the text, never a hang (every call is
bounded by ``CALL_DEADLINE_S``), and the server must still answer afterwards.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mcp.types import CallToolResult, TextContent, Tool

from mcp_frontend.server import build_server
from orchestrator import open_orchestrator
from orchestrator.testing import FakeBackend

from .hostile import (
    BASELINE,
    FIELD_POOLS,
    VALID_VALUES,
    arguments_for,
    hostile_names,
    nested_dicts,
    nested_lists,
)
from .server_thread import CrashLog, ServerThread, serve_in_thread

EXAMPLES_PER_TOOL = 60
"""Per tool; with ~12 tools this keeps the module well under the suite's time budget."""

MAX_ERROR_CHARS = 4000

# What an internal failure looks like if it ever reaches a client.
_LEAKS = ("Traceback (most recent call last)", 'File "/', "RecursionError", "<class '")

outcomes: Counter[tuple[str, str]] = Counter()
"""(tool, outcome) counts over the run, shown at the end of the module (``-s``)."""


def _listed_tools() -> list[Tool]:
    async def listed() -> list[Tool]:
        async with open_orchestrator(FakeBackend(["m"])) as orch:
            return await build_server(orch).list_tools()

    tools: list[Tool] = trio.run(listed)
    return tools


TOOLS = {t.name: t for t in _listed_tools()}
FUZZED_TOOLS = sorted(TOOLS)
"""The tools every fuzzing test below is parametrized over."""


@pytest.fixture(scope="module")
def crashes() -> Iterator[CrashLog]:
    handler = CrashLog()
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield handler
    finally:
        root.removeHandler(handler)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, crashes: CrashLog) -> Iterator[ServerThread]:
    with serve_in_thread(tmp_path_factory.mktemp("hostile"), allow_remote_images=True) as running:
        yield running
    print("\nhostile inputs by tool and outcome:")
    for (tool, outcome), count in sorted(outcomes.items()):
        print(f"  {tool:24} {outcome:10} {count}")
    print(f"  total {sum(outcomes.values())}")


def check_outcome(tool: str, result: CallToolResult) -> str:
    """Assert ``result`` is a clean answer or a clean error; return which."""
    if not result.is_error:
        return "result"
    assert result.content, f"{tool}: an error without a message"
    block = result.content[0]
    assert isinstance(block, TextContent)
    message = block.text
    assert message.strip() != f"Error executing tool {tool}", (
        f"{tool} crashed (an unexpected exception; see the server log)"
    )
    for leak in _LEAKS:
        assert leak not in message, f"{tool}: internal detail {leak!r} in {message[:500]!r}"
    # One actionable line, not an echo of whatever was sent (a 300 000-character prompt).
    assert len(message) <= MAX_ERROR_CHARS, f"{tool}: a {len(message)}-character error"
    return "error"


def test_the_server_lists_tools() -> None:
    assert {"load_model", "chat_completion", "analyze_image", "validate_json_schema"} <= set(TOOLS)


def test_the_fuzzed_tools_are_every_tool_the_running_server_registers(
    server: ServerThread,
) -> None:
    # The fuzzed set is read at collection time from a bare server; the stack under
    # test is configured differently (agent config, image roots, remote fetch). Any
    # tool it registers, listed or not, must be in the fuzzed set, and vice versa.
    registered = server.registered_tool_names()
    listed = {t.name for t in server.tools}

    assert registered == listed == set(FUZZED_TOOLS)
    assert len(FUZZED_TOOLS) >= 16


@pytest.mark.parametrize("tool", FUZZED_TOOLS)
def test_every_tool_argument_has_a_hostile_pool(tool: str) -> None:
    missing = sorted(set(TOOLS[tool].input_schema.get("properties", {})) - set(FIELD_POOLS))

    assert not missing, f"add hostile values for {tool}'s {missing} to security.hostile.FIELD_POOLS"


@pytest.mark.parametrize("tool", FUZZED_TOOLS)
@settings(
    max_examples=EXAMPLES_PER_TOOL,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_hostile_arguments_get_a_result_or_a_clear_error(
    server: ServerThread, crashes: CrashLog, tool: str, data: st.DataObject
) -> None:
    arguments: dict[str, Any] = data.draw(
        arguments_for(tool, TOOLS[tool].input_schema), label="args"
    )
    before = len(crashes.crashes)

    result = server.call(tool, arguments)

    outcome = check_outcome(tool, result)
    outcomes[(tool, outcome)] += 1
    new = crashes.crashes[before:]
    assert not new, f"{tool} logged an unexpected exception: {new[0].getMessage()}"


def test_the_server_still_answers_after_the_fuzzing(server: ServerThread) -> None:
    result = server.call("health_check", {})

    assert not result.is_error
    assert result.structured_content is not None
    assert result.structured_content["reachable"] is True


def test_no_server_side_crash_was_logged(crashes: CrashLog) -> None:
    assert [r.getMessage() for r in crashes.crashes] == []


def _numeric(schema: dict[str, Any]) -> bool:
    text = str(schema)
    return "'number'" in text or "'integer'" in text


@pytest.mark.parametrize(
    ("tool", "field"),
    [
        (name, field)
        for name, tool in sorted(TOOLS.items())
        for field, schema in sorted(tool.input_schema.get("properties", {}).items())
        if _numeric(schema)
    ],
)
@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")], ids=str)
def test_numbers_only_the_wire_carries_are_refused_or_handled(
    server: ServerThread, tool: str, field: str, value: float
) -> None:
    # The SDK parses NaN and Infinity in JSON; our client would send them as null.
    schema = TOOLS[tool].input_schema
    arguments = {n: VALID_VALUES[n] for n in schema.get("required", [])}
    arguments |= BASELINE.get(tool, {}) | {field: value}

    message = server.call_unencoded(tool, arguments)  # raises if the tool crashed

    outcomes[(tool, "non-finite")] += 1
    if message is not None:
        assert field in message


@pytest.mark.parametrize(
    ("tool", "field"),
    [
        (name, field)
        for name, tool in sorted(TOOLS.items())
        for field, schema in sorted(tool.input_schema.get("properties", {}).items())
        if "'string'" in str(schema)
    ],
)
def test_a_huge_string_argument_is_not_echoed_back(
    server: ServerThread, tool: str, field: str
) -> None:
    schema = TOOLS[tool].input_schema
    arguments = {n: VALID_VALUES[n] for n in schema.get("required", [])}
    arguments |= BASELINE.get(tool, {}) | {field: "a" * 10_000 + "\x1b[2J"}

    result = server.call(tool, arguments)

    outcomes[(tool, "huge-string")] += 1
    check_outcome(tool, result)
    assert "\x1b[2J" not in str(result.structured_content)


_URI_TAILS = st.one_of(
    hostile_names.filter(lambda name: len(name) <= 10_000),
    st.sampled_from(["", "/", "%00", "%2e%2e/%2e%2e", "?x=1#y", "\x00", "a" * 10_000]),
)
uris = st.one_of(
    st.builds(lambda tail: f"lmsorch://status/{tail}", _URI_TAILS),
    st.builds(lambda tail: f"lmsorch://{tail}", _URI_TAILS),
    st.sampled_from(
        ["file:///etc/passwd", "http://127.0.0.1/", "lmsorch:", "", "lmsorch://status/../models"]
    ),
)


@settings(
    max_examples=EXAMPLES_PER_TOOL * 2,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(uri=uris)
def test_hostile_resource_uris_get_contents_or_a_clear_error(
    server: ServerThread, crashes: CrashLog, uri: str
) -> None:
    before = len(crashes.crashes)

    text = server.read(uri)

    outcomes[("resources/read", "error" if text.startswith("error: ") else "result")] += 1
    # (The SDK's "Unknown resource: <uri>" repeats the URI as sent, so no length bound here.)
    for leak in _LEAKS:
        assert leak not in text
    assert not crashes.crashes[before:], crashes.crashes[before].getMessage()


WIRE_DEPTH = 200
"""About the deepest JSON the SDK's parser takes (pydantic stops at ~250 levels)."""
SERVER_DEPTH = 2000
"""Deeper than the wire carries: handed to the server object directly."""
_SHAPES: dict[str, Any] = {
    "deep-list": nested_lists(WIRE_DEPTH),
    "deep-dict": nested_dicts(WIRE_DEPTH),
    "wide-list": ["a" * 64] * 50_000,
    "wide-dict": {f"k{i}": i for i in range(20_000)},
}
"""Huge and deeply nested values, beyond what the strategies draw (depth 60, a few leaves)."""
_UNENCODED: dict[str, Any] = {
    "deeper-list": nested_lists(SERVER_DEPTH),
    "deeper-dict": nested_dicts(SERVER_DEPTH),
}
_FIELDS = [
    (name, field)
    for name in FUZZED_TOOLS
    # A tool without arguments gets the value as an argument it does not take.
    for field in sorted(TOOLS[name].input_schema.get("properties", {})) or ["unexpected"]
]


def _with(tool: str, field: str, value: Any) -> dict[str, Any]:
    schema = TOOLS[tool].input_schema
    arguments = {n: VALID_VALUES[n] for n in schema.get("required", [])}
    return arguments | BASELINE.get(tool, {}) | {field: value}


@pytest.mark.parametrize("shape", sorted(_SHAPES))
@pytest.mark.parametrize(("tool", "field"), _FIELDS)
def test_huge_and_deeply_nested_values_get_a_clear_answer_in_every_argument(
    server: ServerThread,
    crashes: CrashLog,
    tool: str,
    field: str,
    shape: str,
) -> None:
    before = len(crashes.crashes)

    result = server.call(tool, _with(tool, field, _SHAPES[shape]))

    outcomes[(tool, shape)] += 1
    check_outcome(tool, result)
    new = crashes.crashes[before:]
    assert not new, f"{tool}.{field}={shape} logged an unexpected exception: {new[0].getMessage()}"


@pytest.mark.parametrize("shape", sorted(_UNENCODED))
@pytest.mark.parametrize(("tool", "field"), _FIELDS)
def test_nesting_deeper_than_the_wire_carries_does_not_crash_a_tool(
    server: ServerThread, tool: str, field: str, shape: str
) -> None:
    message = server.call_unencoded(tool, _with(tool, field, _UNENCODED[shape]))  # raises on crash

    outcomes[(tool, shape)] += 1
    if message is not None:
        assert len(message) <= MAX_ERROR_CHARS
        for leak in _LEAKS:
            assert leak not in message
