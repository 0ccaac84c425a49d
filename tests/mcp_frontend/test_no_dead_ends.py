"""No dead ends: embeddings on the embedded backend, refusals before a load that could not help."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import trio
from mcp import Client, StdioServerParameters

from orchestrator import Config
from orchestrator.backends.provision import fetch_demo_model
from tests.backends.gguf_edit import with_pooling
from tests.mcp_frontend.mcp_support import (
    DEMO,
    GEMMA,
    QWEN,
    Fake,
    LMStudio,
    data_url,
    error,
    ok,
    png,
    server_env,
)

EMBED = "smollm2-mean"


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo chat model, and an embedding model made from its weights (see gguf_edit)."""
    demo = fetch_demo_model(Config.load().llamacpp.resolved_models_dir()).path
    directory = tmp_path_factory.mktemp("models")
    (directory / demo.name).symlink_to(demo)
    with_pooling(demo, directory / f"{EMBED}.gguf")
    return directory


def _llamacpp_server(tmp_path: Path, models_dir: Path) -> StdioServerParameters:
    """``lmsorch serve --backend llamacpp`` on ``models_dir``, as an MCP client starts it."""
    env = server_env(tmp_path, LMSORCH_LLAMACPP_MODELS_DIR=str(models_dir))
    lmsorch = str(Path(sys.executable).parent / "lmsorch")
    return StdioServerParameters(command=lmsorch, args=["serve", "--backend", "llamacpp"], env=env)


async def test_the_embedded_backend_embeds_and_refuses_what_it_cannot_serve_over_stdio(
    tmp_path: Path, models_dir: Path
) -> None:
    params = _llamacpp_server(tmp_path, models_dir)
    image = data_url(png())

    with trio.fail_after(120):
        async with Client(params, mode="legacy") as client:
            listed = ok(await client.call_tool("list_models", {}))
            vectors = ok(
                await client.call_tool(
                    "generate_embeddings", {"text": ["red apple", "green pear"], "model": EMBED}
                )
            )
            not_embedding = error(
                await client.call_tool("generate_embeddings", {"text": "x", "model": DEMO})
            )
            not_vision = error(
                await client.call_tool("analyze_image", {"images": image, "model": DEMO})
            )
            demo_status = ok(await client.call_tool("model_status", {"model": DEMO}))

    assert {m["key"]: m["type"] for m in listed["models"]} == {DEMO: "llm", EMBED: "embedding"}
    assert vectors["model"] == EMBED
    assert len(vectors["embeddings"]) == 2
    assert vectors["dimensions"] == 576  # SmolLM2-135M's embedding length
    assert vectors["embeddings"][0] != vectors["embeddings"][1]
    assert f"model '{DEMO}' is no embedding model" in not_embedding
    assert f"embedding models: {EMBED}" in not_embedding
    assert f"model '{DEMO}' takes no images" in not_vision
    assert "the backend offers no vision models" in not_vision
    # Neither refusal loaded the chat model.
    assert demo_status["models"][0]["state"] == "UNLOADED"


async def test_vision_on_a_text_model_is_refused_naming_the_vision_models(lm: LMStudio) -> None:
    msg = error(
        await lm.client.call_tool("analyze_image", {"images": data_url(png()), "model": QWEN})
    )

    assert f"model '{QWEN}' takes no images (type 'llm'); vision models: {GEMMA}" in msg
    assert lm.sim.cli_runs("load") == []


async def test_refusals_reach_an_http_client_before_any_load(http_url: str, fake: Fake) -> None:
    with trio.fail_after(10):
        async with Client(http_url) as client:
            image = error(
                await client.call_tool(
                    "analyze_image", {"images": data_url(png()), "model": "model-a"}
                )
            )
            embed = error(
                await client.call_tool("generate_embeddings", {"text": "x", "model": "model-b"})
            )

    assert "takes no images" in image
    assert "is no embedding model" in embed
    assert fake.backend.count("load") == 0


async def test_a_two_step_responses_chain_continues_on_llama_cpp_over_stdio(
    tmp_path: Path, models_dir: Path
) -> None:
    params = _llamacpp_server(tmp_path, models_dir)
    ask = {"model": DEMO, "max_output_tokens": 8, "temperature": 0}

    with trio.fail_after(120):
        async with Client(params, mode="legacy") as client:
            first = ok(await client.call_tool("create_response", ask | {"input_text": "I am Ann."}))
            second = ok(
                await client.call_tool(
                    "create_response",
                    ask | {"input_text": "Who am I?", "previous_response_id": first["id"]},
                )
            )
            third = ok(
                await client.call_tool(
                    "create_response",
                    ask | {"input_text": "Again?", "previous_response_id": second["id"]},
                )
            )
            expired = error(
                await client.call_tool(
                    "create_response", ask | {"input_text": "x", "previous_response_id": "resp_x"}
                )
            )

    assert second["previous_response_id"] == first["id"]
    assert third["previous_response_id"] == second["id"]
    assert len({first["id"], second["id"], third["id"]}) == 3
    # The history went with each step: the prompt grew by the earlier turns.
    assert first["usage"]["input_tokens"] < second["usage"]["input_tokens"]
    assert second["usage"]["input_tokens"] < third["usage"]["input_tokens"]
    assert "unknown or expired response id 'resp_x'" in expired
