"""The protocol surface a client sees: capabilities, annotations, descriptions, schemas."""

from __future__ import annotations

import pytest
import trio
from mcp import Client
from mcp.shared.exceptions import MCPError
from mcp.types import METHOD_NOT_FOUND, ServerCapabilities

from mcp_frontend.server import build_server
from tests.mcp_frontend.mcp_support import Fake


def assert_honest(caps: ServerCapabilities, *, handshake: bool) -> None:
    """Nothing advertised that the server does not do in that protocol era.

    Resource subscriptions and logging are served to handshake-era connections
    only; the stateless 2026-07-28 era would need subscriptions/listen.
    """
    assert caps.prompts is None
    assert caps.resources is not None
    assert (caps.resources.subscribe, caps.resources.list_changed) == (handshake, False)
    assert (caps.logging is not None) == handshake
    assert caps.completions is not None
    assert caps.tools is not None
    assert not caps.tools.list_changed


async def test_the_discovery_answer_claims_only_what_is_honoured(fake: Fake) -> None:
    # The in-memory client probes server/discover (the stateless 2026-07-28 era).
    assert_honest(fake.client.server_capabilities, handshake=False)


async def test_the_handshake_claims_only_what_is_honoured(fake: Fake) -> None:
    async with Client(build_server(fake.orch, settings=fake.settings), mode="legacy") as client:
        assert_honest(client.server_capabilities, handshake=True)


async def test_http_discovery_claims_only_what_is_honoured(http_url: str) -> None:
    with trio.fail_after(10):
        async with Client(http_url) as client:
            assert_honest(client.server_capabilities, handshake=False)


async def test_prompts_get_is_method_not_found_not_an_internal_error(fake: Fake) -> None:
    with pytest.raises(MCPError) as caught:
        await fake.client.get_prompt("anything")
    assert caught.value.error.code == METHOD_NOT_FOUND


async def test_lifecycle_tools_say_they_touch_no_outside_world(fake: Fake) -> None:
    tools = {t.name: t for t in (await fake.client.list_tools()).tools}
    for name in ("load_model", "unload_model", "reset_breaker"):
        annotations = tools[name].annotations
        assert annotations is not None
        assert annotations.open_world_hint is False, name


async def test_tool_descriptions_carry_no_docstring_indentation(fake: Fake) -> None:
    tools = (await fake.client.list_tools()).tools
    multi_line = [t for t in tools if t.description and "\n" in t.description]
    assert multi_line  # the check below checks something
    for tool in multi_line:
        assert tool.description is not None
        for line in tool.description.split("\n"):
            assert line == line.lstrip(), (tool.name, line)
        assert tool.description == tool.description.strip()


async def test_chat_completion_parsed_is_typed_in_the_output_schema(fake: Fake) -> None:
    tools = {t.name: t for t in (await fake.client.list_tools()).tools}
    schema = tools["chat_completion"].output_schema
    assert schema is not None
    parsed = schema["properties"]["parsed"]
    json_types = {"object", "array", "string", "number", "integer", "boolean", "null"}
    assert set(parsed["type"]) == json_types
