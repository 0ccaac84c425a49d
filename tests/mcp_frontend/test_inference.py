"""Inference tools through the in-memory MCP client, against the LM Studio simulator."""

from __future__ import annotations

from typing import Any

import trio

from orchestrator import Orchestrator, State
from tests.fakes import Reply, Simulator
from tests.mcp_frontend.mcp_support import (
    EMBED,
    QWEN,
    Fake,
    LMStudio,
    error,
    mcp_client,
    ok,
)

PERSON = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
    "required": ["name", "age"],
}


def requests_counted(orch: Orchestrator, outcome: str) -> float | None:
    labels = {"model": QWEN, "endpoint": "chat", "outcome": outcome}
    return orch.metrics.registry.get_sample_value("lmsorch_inference_requests_total", labels)


def chat_bodies(sim: Simulator) -> list[Any]:
    return [c.body for c in sim.requests("/v1/chat/completions")]


async def test_chat_completion_loads_the_default_model_and_answers(lm: LMStudio) -> None:
    lm.sim.script(QWEN, Reply(content="Paris."))

    out = ok(
        await lm.client.call_tool(
            "chat_completion",
            {"prompt": "Capital of France?", "system_prompt": "Be brief.", "max_tokens": 8},
        )
    )

    assert out["content"] == "Paris."
    assert out["model"] == QWEN
    assert out["identifier"] == QWEN
    assert out["finish_reason"] == "stop"
    assert out["reasoning"] is None
    assert out["usage"]["completion_tokens"] > 0
    [body] = chat_bodies(lm.sim)
    assert body["model"] == QWEN
    assert body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Capital of France?"},
    ]
    assert body["max_tokens"] == 8
    assert body["ttl"] == 600  # the model's TTL rides along, should the server JIT-reload it
    assert [load.ttl_s for load in lm.sim.state.loads] == [600]


async def test_chat_completion_takes_a_conversation_and_separates_reasoning(lm: LMStudio) -> None:
    lm.sim.script(QWEN, Reply(content="4", reasoning="2+2 is 4"))
    messages = [
        {"role": "user", "content": "2+2?"},
        {"role": "assistant", "content": "Let me think."},
        {"role": "user", "content": "Well?"},
    ]

    out = ok(await lm.client.call_tool("chat_completion", {"messages": messages}))

    assert out["content"] == "4"
    assert out["reasoning"] == "2+2 is 4"
    assert chat_bodies(lm.sim)[0]["messages"] == messages


async def test_inline_think_tags_are_moved_out_of_the_answer(lm: LMStudio) -> None:
    lm.sim.script(QWEN, Reply(content="<think>hmm, short</think>\n\nYes."))

    out = ok(await lm.client.call_tool("chat_completion", {"prompt": "ok?"}))

    assert (out["content"], out["reasoning"]) == ("Yes.", "hmm, short")


async def test_a_json_schema_answer_is_decoded_and_checked(lm: LMStudio) -> None:
    lm.sim.script(
        QWEN, Reply(content='{"name": "Ada", "age": 36}'), Reply(content='{"name": "Ada"}')
    )
    fmt = {"type": "json_schema", "json_schema": {"name": "person", "schema": PERSON}}

    good = ok(
        await lm.client.call_tool("chat_completion", {"prompt": "Ada?", "response_format": fmt})
    )
    bad = ok(
        await lm.client.call_tool("chat_completion", {"prompt": "Ada?", "response_format": fmt})
    )

    assert good["parsed"] == {"name": "Ada", "age": 36}
    assert good["schema_errors"] == []
    assert bad["parsed"] == {"name": "Ada"}
    assert bad["schema_errors"] == ["$: 'age' is a required property"]
    sent = chat_bodies(lm.sim)[0]["response_format"]
    assert sent == {"type": "json_schema", "json_schema": {"name": "person", "schema": PERSON}}


async def test_an_invalid_response_schema_is_refused_before_any_request(lm: LMStudio) -> None:
    fmt = {"type": "json_schema", "json_schema": {"name": "p", "schema": {"type": "thing"}}}

    msg = error(
        await lm.client.call_tool("chat_completion", {"prompt": "x", "response_format": fmt})
    )
    missing = error(
        await lm.client.call_tool(
            "chat_completion", {"prompt": "x", "response_format": {"type": "json_schema"}}
        )
    )

    assert "response_format.json_schema.schema is invalid: #/type:" in msg
    assert "json_schema is required" in missing
    assert chat_bodies(lm.sim) == []
    assert lm.sim.state.loads == []


async def test_prompt_and_messages_are_exclusive_and_one_is_required(lm: LMStudio) -> None:
    both = error(
        await lm.client.call_tool(
            "chat_completion", {"prompt": "a", "messages": [{"role": "user", "content": "b"}]}
        )
    )
    neither = error(await lm.client.call_tool("chat_completion", {"system_prompt": "s"}))

    assert "exactly one of 'prompt' or 'messages'" in both
    assert "exactly one of 'prompt' or 'messages'" in neither
    assert lm.sim.state.loads == []


async def test_an_oversized_prompt_is_refused_before_any_load(lm: LMStudio) -> None:
    msg = error(await lm.client.call_tool("chat_completion", {"prompt": "x" * 200_001}))

    assert "200001 characters; the limit is 200000" in msg
    assert lm.sim.state.loads == []
    assert chat_bodies(lm.sim) == []


async def test_text_completion_sends_stop_sequences(lm: LMStudio) -> None:
    lm.sim.script(QWEN, Reply(content=" world"))

    out = ok(
        await lm.client.call_tool(
            "text_completion", {"prompt": "hello", "stop_sequences": ["\n"], "temperature": 0}
        )
    )

    assert out["text"] == " world"
    assert out["identifier"] == QWEN
    [call] = lm.sim.requests("/v1/completions")
    assert call.body["prompt"] == "hello"
    assert call.body["stop"] == ["\n"]
    assert call.body["temperature"] == 0


async def test_create_response_continues_a_conversation_with_reasoning_apart(lm: LMStudio) -> None:
    lm.sim.script(QWEN, Reply(content="Hi Ada.", reasoning="greet"), Reply(content="Ada."))

    first = ok(await lm.client.call_tool("create_response", {"input_text": "I am Ada."}))
    second = ok(
        await lm.client.call_tool(
            "create_response", {"input_text": "Who am I?", "previous_response_id": first["id"]}
        )
    )

    assert first["output_text"] == "Hi Ada."
    assert first["reasoning"] == "greet"
    assert first["id"].startswith("resp_")
    assert second["output_text"] == "Ada."
    assert second["previous_response_id"] == first["id"]
    assert lm.sim.requests("/v1/responses")[1].body["previous_response_id"] == first["id"]


async def test_generate_embeddings_uses_the_default_embedding_model(lm: LMStudio) -> None:
    one = ok(await lm.client.call_tool("generate_embeddings", {"text": "hello"}))
    many = ok(await lm.client.call_tool("generate_embeddings", {"text": ["a", "b", "c"]}))

    assert one["model"] == EMBED
    assert len(one["embeddings"]) == 1
    assert one["dimensions"] == len(one["embeddings"][0]) > 0
    assert len(many["embeddings"]) == 3
    assert {load.key for load in lm.sim.state.loads} == {EMBED}


async def test_embedding_input_limits_are_checked_first(lm: LMStudio) -> None:
    empty = error(await lm.client.call_tool("generate_embeddings", {"text": ["a", " "]}))
    none = error(await lm.client.call_tool("generate_embeddings", {"text": []}))

    assert "text 1 is empty" in empty
    assert "give 1 to 512 texts, got 0" in none
    assert lm.sim.state.loads == []


async def test_a_model_evicted_behind_our_back_is_reloaded_and_the_call_retried_once(
    lm: LMStudio,
) -> None:
    ok(await lm.client.call_tool("load_model", {"model": QWEN}))
    lm.sim.evict(QWEN)  # LM Studio dropped it; the orchestrator still believes READY
    lm.sim.script(QWEN, Reply(content="back"))

    out = ok(await lm.client.call_tool("chat_completion", {"prompt": "still there?"}))

    assert out["content"] == "back"
    assert len(lm.sim.state.loads) == 2
    assert requests_counted(lm.orch, "lost") == 1
    assert requests_counted(lm.orch, "ok") == 1
    assert next(s for s in lm.orch.status() if s.model == QWEN).state is State.READY


async def test_a_model_lost_twice_fails_with_a_clear_message(lm: LMStudio) -> None:
    lm.sim.faults.unload_during_inference.add(QWEN)

    msg = error(await lm.client.call_tool("chat_completion", {"prompt": "hi"}))

    assert "Model unloaded" in msg
    assert "dropped the model twice" in msg
    assert len(lm.sim.state.loads) == 2


async def test_no_model_and_no_default_lists_the_candidates(fake: Fake) -> None:
    chat = error(await fake.client.call_tool("chat_completion", {"prompt": "hi"}))
    embed = error(await fake.client.call_tool("generate_embeddings", {"text": "hi"}))

    assert "no model given and no default_model configured" in chat
    assert "LMSORCH_DEFAULT_MODEL" in chat
    assert "available: model-a, model-b" in chat
    assert "no default_embedding_model configured" in embed


async def chat_reporting(
    lm: LMStudio, on_report: trio.Event | None = None
) -> tuple[dict[str, Any], list[str]]:
    """Call ``chat_completion`` asking for progress; each report sets ``on_report``."""
    seen: list[str] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append(message or "")
        if on_report is not None:
            on_report.set()

    with trio.fail_after(10):
        result = await lm.client.call_tool(
            "chat_completion", {"prompt": "hi"}, progress_callback=on_progress
        )
    return ok(result), seen


async def test_a_call_waiting_for_a_load_reports_progress(lm: LMStudio) -> None:
    gate = lm.sim.faults.hold_load(QWEN)

    out, seen = await chat_reporting(lm, gate)

    assert out["content"]
    assert seen[0] == f"{QWEN}: LOADING"
    assert seen[-1] == f"{QWEN}: READY"


async def test_a_slow_answer_from_a_ready_model_reports_no_progress(lm: LMStudio) -> None:
    ok(await lm.client.call_tool("load_model", {"model": QWEN}))
    gate = lm.sim.faults.hold_first_token(QWEN)

    async def answer_late() -> None:
        await trio.sleep(0.2)  # twenty quiet periods
        gate.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(answer_late)
        out, seen = await chat_reporting(lm)

    assert out["content"]
    assert seen == []


async def test_reloading_a_model_lost_under_the_lease_reports_progress(lm: LMStudio) -> None:
    ok(await lm.client.call_tool("load_model", {"model": QWEN}))
    lm.sim.evict(QWEN)  # the request finds it gone; the re-lease reloads it
    gate = lm.sim.faults.hold_load(QWEN)

    out, seen = await chat_reporting(lm, gate)

    assert out["content"]
    assert f"{QWEN}: LOADING" in seen
    assert seen[-1] == f"{QWEN}: READY"


async def test_a_server_given_no_inference_client_owns_one_per_connection(lm: LMStudio) -> None:
    # Each connection's client is closed when it ends (an unclosed one would warn, and
    # warnings are errors here); the next connection gets a fresh one.
    for _ in range(2):
        async with mcp_client(lm.orch, lm.settings) as client:
            assert ok(await client.call_tool("chat_completion", {"prompt": "hi"}))["content"]


async def test_an_answer_lost_to_reasoning_says_so_and_reasoning_can_be_switched_off(
    lm: LMStudio,
) -> None:
    """F7: reasoning can eat all of max_tokens (BT#1990); 'off' is effort 'none' (BT#988)."""
    lm.sim.script(QWEN, Reply(content="", reasoning="hmm " * 8, finish_reason="length"))
    out = ok(
        await lm.client.call_tool(
            "chat_completion", {"prompt": "hi", "max_tokens": 8, "reasoning_effort": "low"}
        )
    )
    assert out["content"] == ""
    assert out["warning"] is not None
    assert "token limit ran out before the model wrote any answer" in out["warning"]
    assert chat_bodies(lm.sim)[-1]["reasoning_effort"] == "low"

    lm.sim.script(QWEN, Reply(content="Paris."))
    answer = ok(await lm.client.call_tool("chat_completion", {"prompt": "capital?"}))
    assert answer["warning"] is None

    lm.sim.script(QWEN, Reply(content="Paris."))
    ok(
        await lm.client.call_tool(
            "create_response", {"input_text": "capital?", "reasoning_effort": "off"}
        )
    )
    assert lm.sim.requests("/v1/responses")[-1].body["reasoning"] == {"effort": "none"}


async def test_a_prompt_beyond_the_loaded_context_is_a_clear_error_or_warning(
    lm: LMStudio,
) -> None:
    """F5: overflow as 200-with-error (BT#2322) or as an empty answer (BT#2339)."""
    lm.sim.script(QWEN, Reply(content=""))
    empty = ok(await lm.client.call_tool("chat_completion", {"prompt": "a very long prompt"}))
    assert empty["warning"] is not None
    assert "does not fit the context the model is loaded with" in empty["warning"]
    lm.sim.faults.route_error_200["/v1/chat/completions"] = (
        "Trying to keep the first 40000 tokens when context the overflows. However, the model "
        "is loaded with context length of only 4096 tokens, which is not enough."
    )
    msg = error(await lm.client.call_tool("chat_completion", {"prompt": "a very long prompt"}))
    assert "the prompt does not fit the context the model is loaded with" in msg


async def test_load_model_takes_a_context_length_and_list_models_shows_what_loaded(
    lm: LMStudio,
) -> None:
    """F5: the context reaches LM Studio and the loaded one is read back."""
    ok(await lm.client.call_tool("load_model", {"model": QWEN, "context_length": 8192}))
    assert lm.sim.state.loads[-1].context_length == 8192
    listed = ok(await lm.client.call_tool("list_models", {}))
    (entry,) = [m for m in listed["models"] if m["key"] == QWEN]
    assert [i["context_length"] for i in entry["loaded_instances"]] == [8192]


async def test_model_status_shows_the_loaded_context_and_warns_of_a_silent_fit(
    lm: LMStudio,
) -> None:
    """F5: LM Studio 0.4.12+ may fit the context below what was asked; the status says so."""
    lm.sim.state.catalog[QWEN].fit_context = 4096
    loaded = ok(await lm.client.call_tool("load_model", {"model": QWEN, "context_length": 16384}))
    assert loaded["status"]["context_length"] == 4096
    assert "less than the 16384 asked for" in loaded["status"]["warning"]
    listed = ok(await lm.client.call_tool("model_status", {"model": QWEN}))
    (status,) = listed["models"]
    assert (status["context_length"], status["warning"]) == (4096, loaded["status"]["warning"])
