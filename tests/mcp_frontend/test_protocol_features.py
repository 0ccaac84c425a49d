"""Protocol features through real clients: completions (and more) over stdio and HTTP."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import trio
from mcp import Client, StdioServerParameters
from mcp.types import PromptReference, ResourceTemplateReference

from tests.mcp_frontend.mcp_support import server_env

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
