"""Protocol features through real clients: completions, subscriptions, logging.

Over HTTP the conformance suite (tests/conformance) also exercises
``resources/subscribe``, ``resources/unsubscribe`` and ``logging/setLevel``.
"""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path
from typing import Any

import trio
from mcp import Client, StdioServerParameters
from mcp.shared.exceptions import MCPDeprecationWarning
from mcp.types import (
    LoggingMessageNotificationParams,
    PromptReference,
    ResourceTemplateReference,
    ResourceUpdatedNotification,
)

from orchestrator import Config
from orchestrator.backends.provision import fetch_demo_model
from tests.mcp_frontend.mcp_support import DEMO, ok, server_env

STATUS = ResourceTemplateReference(uri="lmsorch://status/{+model}")


async def test_model_arguments_complete_over_http(http_url: str) -> None:
    with trio.fail_after(10):
        async with Client(http_url) as client:
            assert client.server_capabilities.completions is not None
            every = await client.complete(STATUS, {"name": "model", "value": ""})
            some = await client.complete(STATUS, {"name": "model", "value": "model-b"})
            other = await client.complete(STATUS, {"name": "style", "value": ""})

    assert every.completion.values == ["model-a", "model-b"]
    assert every.completion.total == 2
    assert some.completion.values == ["model-b"]
    assert other.completion.values == []


async def test_models_and_mcp_names_complete_over_stdio(tmp_path: Path) -> None:
    models = tmp_path / "models"
    models.mkdir()
    for key in ("alpha-chat", "alpha-coder", "beta"):
        (models / f"{key}.gguf").write_bytes(b"GGUF")  # listed by name; never loaded here
    mcp_json = tmp_path / "mcp.json"
    servers = {"git": {"command": "mcp-server-git"}, "github": {"command": "gh-mcp"}}
    mcp_json.write_text(json.dumps({"mcpServers": servers | {"files": {"command": "x"}}}))
    env = server_env(
        tmp_path, LMSORCH_LLAMACPP_MODELS_DIR=str(models), LMSORCH_AGENT_MCP_CONFIG=str(mcp_json)
    )
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "mcp_frontend", "--backend", "llamacpp"], env=env
    )
    prompt = PromptReference(name="anything")

    with trio.fail_after(30):
        async with Client(params, mode="legacy") as client:
            models_done = await client.complete(STATUS, {"name": "model", "value": "alpha"})
            names_done = await client.complete(prompt, {"name": "mcp_name", "value": "gi"})

    assert models_done.completion.values == ["alpha-chat", "alpha-coder"]
    assert names_done.completion.values == ["git", "github"]


async def test_subscribers_hear_of_state_changes_and_log_events_over_stdio(
    tmp_path: Path,
) -> None:
    models = Config.load().llamacpp.resolved_models_dir()
    fetch_demo_model(models)
    env = server_env(tmp_path, LMSORCH_LLAMACPP_MODELS_DIR=str(models))
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "mcp_frontend", "--backend", "llamacpp"], env=env
    )
    watched, other = f"lmsorch://status/{DEMO}", "lmsorch://status/someone-else"
    updated: list[str] = []
    logs: list[LoggingMessageNotificationParams] = []
    heard_ready = trio.Event()

    async def on_message(message: Any) -> None:
        if isinstance(message, ResourceUpdatedNotification):
            updated.append(str(message.params.uri))

    async def on_log(params: LoggingMessageNotificationParams) -> None:
        logs.append(params)
        data = params.data if isinstance(params.data, dict) else {}
        if data.get("event") == "transition" and data.get("dst") == "READY":
            heard_ready.set()

    # The SDK marks the handshake-era subscribe and setLevel requests deprecated
    # (2026-07-28 replaced them); this server serves them to handshake-era clients.
    with warnings.catch_warnings(), trio.fail_after(60):
        warnings.simplefilter("ignore", MCPDeprecationWarning)
        async with Client(
            params, mode="legacy", message_handler=on_message, logging_callback=on_log
        ) as client:
            await client.subscribe_resource(watched)
            await client.subscribe_resource(other)
            await client.set_logging_level("info")
            ok(await client.call_tool("load_model", {"model": DEMO}))
            await heard_ready.wait()
            await client.unsubscribe_resource(watched)

    assert watched in updated
    assert other not in updated
    assert {e.level for e in logs} <= {"info", "notice", "warning", "error", "critical"}
    assert all(e.logger == "lmsorch" for e in logs)
