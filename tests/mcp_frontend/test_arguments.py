"""Bad arguments: named in a tool error, and never reaching the backend."""

from __future__ import annotations

import pytest

from mcp_frontend.checks.unknown_arguments import MAX_ERROR_CHARS
from tests.mcp_frontend.mcp_support import Fake, error


@pytest.mark.parametrize(
    ("tool", "arguments", "field", "problem"),
    [
        ("load_model", {}, "model", "Field required"),
        ("load_model", {"model": 5}, "model", "valid string"),
        ("load_model", {"model": "model-a", "ttl_s": -1}, "ttl_s", "greater than 0"),
        ("load_model", {"model": "model-a", "ttl_s": "soon"}, "ttl_s", "valid number"),
        ("load_model", {"model": "model-a", "context_length": 0}, "context_length", "greater"),
        (
            "chat_completion",
            {"prompt": "hi", "temperature": 3},
            "temperature",
            "less than or equal",
        ),
        (
            "chat_completion",
            {"messages": [{"role": "robot", "content": "x"}]},
            "messages.0.role",
            "'system', 'user' or 'assistant'",
        ),
        (
            "chat_completion",
            {"prompt": "hi", "response_format": {"type": "json_object"}},
            "response_format.type",
            "'json_schema' or 'text'",
        ),
        ("text_completion", {"prompt": ""}, "prompt", "at least 1 character"),
        ("generate_embeddings", {"text": 7}, "text.str", "valid string"),
        ("analyze_image", {"images": "a.png", "mode": "paint"}, "mode", "'describe'"),
        (
            "create_response",
            {"input_text": "hi", "previous_response_id": "a b"},
            "previous_response_id",
            "pattern",
        ),
    ],
)
async def test_a_missing_or_wrong_typed_argument_is_named_in_a_tool_error(
    fake: Fake, tool: str, arguments: dict[str, object], field: str, problem: str
) -> None:
    msg = error(await fake.client.call_tool(tool, arguments))

    assert f"Error executing tool {tool}" in msg
    assert f"\n{field}\n" in msg
    assert problem in msg
    assert fake.backend.count("load") == 0


async def test_an_argument_error_is_trimmed_to_field_and_problem(fake: Fake) -> None:
    msg = error(await fake.client.call_tool("chat_completion", {"messages": [{"role": "x"}]}))

    assert msg == (
        "Error executing tool chat_completion: 2 argument errors\n"
        "messages.0.role\n  Input should be 'system', 'user' or 'assistant'\n"
        "messages.0.content\n  Field required"
    )


async def test_an_unknown_argument_is_rejected_with_the_accepted_ones(fake: Fake) -> None:
    msg = error(await fake.client.call_tool("chat_completion", {"prompt": "hi", "temprature": 0.2}))

    assert "unknown argument(s) 'temprature'" in msg
    assert "temperature" in msg.split("accepted:")[1]
    assert fake.backend.count("load") == 0


async def test_a_huge_validation_error_is_cut_with_a_note(fake: Fake) -> None:
    # The SDK's validation error lists every bad item: 5 000 of them is ~1 MB of text.
    msg = error(await fake.client.call_tool("chat_completion", {"messages": ["x"] * 5000}))

    assert msg.startswith("Error executing tool chat_completion: 5000 argument errors")
    assert len(msg) <= MAX_ERROR_CHARS + 60
    assert msg.endswith("more characters]")
    assert "[error cut: " in msg
    assert fake.backend.count("load") == 0


async def test_an_unknown_tool_is_a_tool_error(fake: Fake) -> None:
    assert "Unknown tool" in error(await fake.client.call_tool("lms_no_such_tool", {}))
