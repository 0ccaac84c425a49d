"""The previous bridge's tool calls: hidden aliases, old argument spellings, removed names.

Through the in-memory MCP client, over the LM Studio simulator (the backend's
truth: what it loaded, what request it received).
"""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
import trio

from mcp_frontend.checks.legacy_tools import ALIASES, REMOVED
from tests.fakes import Reply
from tests.mcp_frontend.mcp_support import FAST, GEMMA, QWEN, LMStudio, error, ok, png

CHAT = "/v1/chat/completions"
# The previous bridge's 33 tools (reference-bridge.md section 1).
OLD_TOOLS = {
    "health_check", "list_models", "get_current_model", "chat_completion", "text_completion",
    "create_response", "validate_json_schema", "generate_embeddings",
    "autonomous_filesystem_full", "autonomous_persistent_session", "autonomous_memory_full",
    "autonomous_fetch_full", "autonomous_github_full", "vision_analyze", "autonomous_with_mcp",
    "autonomous_with_multiple_mcps", "autonomous_discover_and_execute", "list_available_mcps",
    "lms_list_loaded_models", "lms_list_downloaded_models", "lms_load_model", "lms_unload_model",
    "lms_ensure_model_loaded", "lms_search_models", "lms_download_model", "lms_resolve_model",
    "lms_server_status", "analyze_image", "describe_image", "compare_images",
    "extract_text_from_image", "identify_objects", "answer_about_image",
}  # fmt: skip


async def test_every_old_name_is_a_tool_a_hidden_alias_or_explained(lm: LMStudio) -> None:
    listed = {t.name for t in (await lm.client.list_tools()).tools}
    assert len(OLD_TOOLS) == 33
    assert not (set(ALIASES) | set(REMOVED)) & listed  # hidden: never listed
    assert OLD_TOOLS - listed == set(ALIASES) | set(REMOVED)
    assert {successor for successor, _ in ALIASES.values()} <= listed


@pytest.mark.parametrize(
    ("keep_loaded", "ttl"),
    [(None, FAST.default_ttl_s), (True, FAST.default_ttl_s), (False, FAST.temporary_ttl_s)],
)
async def test_lms_load_model_loads_with_the_old_ttls(
    lm: LMStudio, keep_loaded: bool | None, ttl: float
) -> None:
    args: dict[str, object] = {"model_name": QWEN}
    if keep_loaded is not None:
        args["keep_loaded"] = keep_loaded
    with trio.fail_after(20):
        out = ok(await lm.client.call_tool("lms_load_model", args))
    assert out["status"]["state"] == "READY"
    assert out["status"]["ttl_s"] == ttl
    assert QWEN in lm.sim.loaded()
    with trio.fail_after(20):
        ok(await lm.client.call_tool("lms_unload_model", {"model_name": QWEN}))
    assert QWEN not in lm.sim.loaded()


async def test_lms_ensure_model_loaded_and_the_listing_aliases(lm: LMStudio) -> None:
    with trio.fail_after(20):
        ok(await lm.client.call_tool("lms_ensure_model_loaded", {"model_name": QWEN}))
        listed = ok(await lm.client.call_tool("lms_list_loaded_models", {}))
        health = ok(await lm.client.call_tool("lms_server_status", {}))
    assert QWEN in lm.sim.loaded()
    entry = next(m for m in listed["models"] if m["key"] == QWEN)
    assert entry["loaded_identifiers"] == [QWEN]
    assert health == ok(await lm.client.call_tool("health_check", {})) | {
        "uptime_s": health["uptime_s"]
    }


async def test_lms_search_models_filters_the_catalogue_by_key(lm: LMStudio) -> None:
    query = QWEN.split("/")[-1][:4].upper()  # the key filter ignores case
    with trio.fail_after(20):
        found = ok(await lm.client.call_tool("lms_search_models", {"query": query, "limit": 3}))
        everything = ok(await lm.client.call_tool("list_models", {}))
    keys = [m["key"] for m in found["models"]]
    assert QWEN in keys
    assert GEMMA not in keys
    assert all(query.lower() in k.lower() for k in keys)
    assert len(keys) < len(everything["models"])


async def test_lms_download_model_is_download_model(lm: LMStudio) -> None:
    # Downloads are off by default: the alias reaches download_model's own refusal.
    message = error(await lm.client.call_tool("lms_download_model", {"model_key": QWEN}))
    assert "allow_downloads" in message
    assert "unknown argument" not in message


async def test_old_max_tokens_auto_and_model_default_mean_the_configured_default(
    lm: LMStudio,
) -> None:
    lm.sim.script(QWEN, Reply(content="hi"))
    with trio.fail_after(20):
        out = ok(
            await lm.client.call_tool(
                "chat_completion", {"prompt": "hi", "model": "default", "max_tokens": "auto"}
            )
        )
    assert (out["model"], out["content"]) == (QWEN, "hi")
    [request] = lm.sim.requests(CHAT)
    assert request.body["model"] == QWEN
    assert "max_tokens" not in request.body


@pytest.mark.parametrize(
    ("tool", "arguments", "mode", "in_prompt"),
    [
        ("analyze_image", {"prompt": "What colour is it?"}, "question", "What colour is it?"),
        ("describe_image", {"style": "brief"}, "describe", "one or two sentences"),
        ("extract_text_from_image", {}, "ocr", "Extract all text"),
        ("identify_objects", {}, "objects", "List every distinct object"),
        ("answer_about_image", {"question": "Is it red?"}, "question", "Is it red?"),
    ],
)
async def test_the_old_vision_tools_become_analyze_image_modes(
    lm: LMStudio, tmp_path: Path, tool: str, arguments: dict[str, str], mode: str, in_prompt: str
) -> None:
    picture = tmp_path / "images" / "red.png"
    picture.write_bytes(png())
    lm.sim.script(GEMMA, Reply(content="seen"))
    # The old vision tools had no model argument; the default here is a text model.
    call = {"image": str(picture), "model": GEMMA, **arguments}
    with trio.fail_after(20):
        out = ok(await lm.client.call_tool(tool, call))
    assert (out["mode"], out["content"]) == (mode, "seen")
    [request] = lm.sim.requests(CHAT)
    parts = request.body["messages"][0]["content"]
    assert in_prompt in parts[0]["text"]
    assert parts[1]["type"] == "image_url"
    assert parts[1]["image_url"]["detail"] == ("high" if mode == "ocr" else "auto")


async def test_compare_images_and_vision_analyze(lm: LMStudio, tmp_path: Path) -> None:
    pictures = []
    for name in ("a.png", "b.png"):
        pictures.append(str(tmp_path / "images" / name))
        (tmp_path / "images" / name).write_bytes(png())
    lm.sim.script(GEMMA, Reply(content="same"), Reply(content="two red pixels"))
    with trio.fail_after(20):
        compared = ok(
            await lm.client.call_tool(
                "compare_images",
                {"images": pictures, "comparison_type": "similarities", "model": GEMMA},
            )
        )
        analysed = ok(
            await lm.client.call_tool(
                "vision_analyze",
                {"task": "Describe both", "images": pictures, "model": GEMMA, "max_tokens": "auto"},
            )
        )
    assert (compared["mode"], analysed["mode"]) == ("compare", "question")
    first, second = (r.body["messages"][0]["content"][0]["text"] for r in lm.sim.requests(CHAT))
    assert "what they have in common" in first
    assert second == "Describe both"


@pytest.mark.parametrize(
    ("tool", "arguments", "expected"),
    [
        ("get_current_model", {}, "model_status"),
        ("lms_resolve_model", {"model_key": "x"}, "fails with the list of available ones"),
        ("autonomous_persistent_session", {"tasks": ["x"]}, "autonomous_with_mcp"),
        ("autonomous_github_full", {"task": "x", "github_token": "ghp_x"}, "GITHUB_PERSONAL"),
    ],
)
async def test_a_removed_tool_names_what_to_use_instead(
    lm: LMStudio, tool: str, arguments: dict[str, object], expected: str
) -> None:
    message = error(await lm.client.call_tool(tool, arguments))
    assert expected in message
    assert "ghp_x" not in message
    assert lm.sim.requests(CHAT) == []


async def test_raw_base64_the_old_bridge_took_is_refused_with_the_data_url_form(
    lm: LMStudio,
) -> None:
    raw = base64.b64encode(png(32, 32)).decode()
    message = error(await lm.client.call_tool("analyze_image", {"image": raw, "model": GEMMA}))
    assert "raw base64 image data; pass it as a data URL (data:image/png;base64," in message
    assert lm.sim.requests(CHAT) == []


async def test_an_alias_is_validated_as_its_successor(lm: LMStudio) -> None:
    message = error(await lm.client.call_tool("lms_unload_model", {"model_name": QWEN, "x": 1}))
    assert "unknown argument(s) 'x'" in message
    assert "accepted: model" in message
