"""The OpenAI-compatible inference client against the LM Studio simulator."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import trio
import trio.testing

from orchestrator.backends.http_errors import EndpointNotSupported
from orchestrator.errors import (
    BackendAuthError,
    BackendProtocolError,
    BackendRejected,
    BackendServerError,
    BackendTimeout,
    BackendUnreachable,
    InvalidModelName,
    InvalidRequest,
    ModelNotLoaded,
)
from orchestrator.inference import (
    ChatCompletionChunk,
    ChatMessage,
    ChatRequest,
    ChatStreamAccumulator,
    CompletionRequest,
    EmbeddingRequest,
    FunctionCallOutput,
    FunctionDef,
    FunctionTool,
    ImagePart,
    ImageUrl,
    InferenceClient,
    InferenceTarget,
    InputMessage,
    InputText,
    JsonSchema,
    ReasoningParams,
    ResponseFormat,
    ResponsesRequest,
    StreamOptions,
    TextPart,
    Tool,
)
from tests.fakes import Reply, ScriptedCall, Simulator, open_simulator

QWEN = "qwen/qwen3-4b"
OSS = "openai/gpt-oss-20b"
EMBED = "text-embedding-nomic-embed-text-v1.5"
WEATHER = Tool(
    function=FunctionDef(
        name="get_weather",
        description="Weather for a city",
        parameters={"type": "object", "properties": {"city": {"type": "string"}}},
    )
)


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with open_simulator() as s:
        s.preload(QWEN)
        yield s


@pytest.fixture
async def client() -> AsyncIterator[InferenceClient]:
    async with InferenceClient(timeout_s=5) as c:
        yield c


def at(sim: Simulator, model: str = QWEN) -> InferenceTarget:
    return InferenceTarget(model=model, identifier=model, base_url=sim.openai_url, headers={})


def ask(text: str = "hi", **fields: Any) -> ChatRequest:
    return ChatRequest(messages=[ChatMessage(role="user", content=text)], **fields)


# -- chat --


async def test_chat_sends_the_request_and_reads_the_answer(
    sim: Simulator, client: InferenceClient
) -> None:
    sim.script(QWEN, Reply(content="Paris."))
    schema = JsonSchema(name="city", schema={"type": "object"}, strict=True)
    request = ask(
        "capital of France?",
        temperature=0.0,
        max_tokens=64,
        tools=[WEATHER],
        tool_choice="auto",
        response_format=ResponseFormat(type="json_schema", json_schema=schema),
        ttl=600,
    )
    answer = await client.chat(at(sim), request=request)
    assert answer.message.text == "Paris."
    assert answer.finish_reason == "stop"
    assert answer.model == QWEN
    assert answer.id.startswith("chatcmpl-")
    assert answer.usage is not None
    assert answer.usage.total_tokens > 0
    (call,) = sim.requests("/v1/chat/completions")
    assert call.body["model"] == QWEN
    assert call.body["tool_choice"] == "auto"
    assert call.body["tools"][0]["function"]["name"] == "get_weather"
    assert call.body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "city", "schema": {"type": "object"}, "strict": True},
    }
    assert call.body["ttl"] == 600
    assert "stream" not in call.body  # defaults stay off the wire


@pytest.mark.parametrize("key", ["reasoning_content", "reasoning"])
async def test_reasoning_is_read_from_either_key(
    sim: Simulator, client: InferenceClient, key: str
) -> None:
    sim.script(QWEN, Reply(content="42", reasoning="think think", reasoning_key=key))  # type: ignore[arg-type]
    answer = await client.chat(at(sim), request=ask())
    assert answer.message.reasoning_text == "think think"
    assert answer.message.text == "42"


async def test_tool_calls(sim: Simulator, client: InferenceClient) -> None:
    sim.script(
        QWEN, Reply(tool_calls=(ScriptedCall(name="get_weather", arguments={"city": "Oslo"}),))
    )
    answer = await client.chat(at(sim), request=ask("weather?", tools=[WEATHER]))
    assert answer.finish_reason == "tool_calls"
    assert answer.message.content is None  # LM Studio sends no content key with tool calls
    (call,) = answer.message.tool_calls or []
    assert call.id is not None
    assert call.id.isdigit()
    assert call.function.name == "get_weather"
    assert call.arguments_dict() == {"city": "Oslo"}
    # The conversation continues with the tool's result.
    follow = ChatRequest(
        messages=[
            ChatMessage(role="user", content="weather?"),
            answer.message,
            ChatMessage(role="tool", tool_call_id=call.id, content='{"temp": 3}'),
        ]
    )
    sim.script(QWEN, Reply(content="3 degrees"))
    assert (await client.chat(at(sim), request=follow)).message.text == "3 degrees"
    sent = sim.requests("/v1/chat/completions")[-1].body["messages"]
    assert sent[1]["tool_calls"][0] == {
        "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'},
        "id": call.id,
        "type": "function",
    }
    assert sent[2] == {"role": "tool", "content": '{"temp": 3}', "tool_call_id": call.id}


async def test_malformed_tool_arguments_are_reported_not_crashed(
    sim: Simulator, client: InferenceClient
) -> None:
    sim.script(QWEN, Reply(tool_calls=(ScriptedCall(name="f", arguments="{not json"),)))
    answer = await client.chat(at(sim), request=ask())
    (call,) = answer.message.tool_calls or []
    with pytest.raises(ValueError, match="not JSON"):
        call.arguments_dict()


async def test_vision_content_parts_go_out_typed(sim: Simulator, client: InferenceClient) -> None:
    image = ImagePart(image_url=ImageUrl(url="data:image/png;base64,AAAA", detail="low"))
    message = ChatMessage(role="user", content=[image, TextPart(text="what is this?")])
    answer = await client.chat(at(sim), request=ChatRequest(messages=[message]))
    assert answer.message.text == "echo: what is this?"
    sent = sim.requests("/v1/chat/completions")[0].body["messages"][0]["content"]
    assert sent[0] == {
        "type": "image_url",
        "image_url": {"url": "data:image/png;base64,AAAA", "detail": "low"},
    }


async def test_invalid_requests_fail_before_sending(
    sim: Simulator, client: InferenceClient
) -> None:
    bad_format = ResponseFormat(type="json_object")  # type: ignore[arg-type]
    with pytest.raises(InvalidRequest, match="json_schema"):
        await client.chat(at(sim), request=ask(response_format=bad_format))
    with pytest.raises(InvalidRequest, match="needs json_schema"):
        await client.chat(at(sim), request=ask(response_format=ResponseFormat(type="json_schema")))
    with pytest.raises(InvalidRequest, match="at least one message"):
        await client.chat(at(sim), request=ChatRequest(messages=[]))
    with pytest.raises(InvalidModelName):
        await client.chat(at(sim, "--model"), request=ask())
    assert sim.requests("/v1/chat/completions") == []


async def test_lm_studio_rejecting_json_object_keeps_its_message(sim: Simulator) -> None:
    async with httpx.AsyncClient() as http:
        raw = await http.post(
            f"{sim.openai_url}/chat/completions",
            json={"model": QWEN, "messages": [], "response_format": {"type": "json_object"}},
        )
    assert raw.status_code == 400
    assert "'response_format.type' must be 'json_schema' or 'text'" in raw.text


# -- streaming --


async def collect(stream: AsyncIterator[ChatCompletionChunk]) -> list[ChatCompletionChunk]:
    return [chunk async for chunk in stream]


async def test_stream_chat(sim: Simulator, client: InferenceClient) -> None:
    sim.script(QWEN, Reply(content="In the beginning", reasoning="hmm ok"))
    request = ask(stream_options=StreamOptions(include_usage=True))
    async with client.stream_chat(at(sim), request=request) as chunks:
        received = await collect(chunks)
    assert sim.requests("/v1/chat/completions")[0].body["stream"] is True
    acc = ChatStreamAccumulator()
    for chunk in received:
        acc.add(chunk)
    whole = acc.result()
    assert whole.message.text == "In the beginning"
    assert whole.message.reasoning_text == "hmm ok"
    assert whole.finish_reason == "stop"
    assert received[-1].choices == []
    assert received[-1].usage is not None


async def test_stream_tool_call_fragments_add_up(sim: Simulator, client: InferenceClient) -> None:
    calls = (
        ScriptedCall(name="get_weather", arguments={"city": "Oslo", "unit": "C"}),
        ScriptedCall(name="get_time", arguments={"tz": "UTC"}),
    )
    sim.script(QWEN, Reply(tool_calls=calls))
    acc = ChatStreamAccumulator()
    async with client.stream_chat(at(sim), request=ask(tools=[WEATHER])) as chunks:
        async for chunk in chunks:
            acc.add(chunk)
    whole = acc.result()
    assert whole.finish_reason == "tool_calls"
    assert whole.message.content is None
    got = [(c.function.name, c.arguments_dict()) for c in whole.message.tool_calls or []]
    assert got == [("get_weather", {"city": "Oslo", "unit": "C"}), ("get_time", {"tz": "UTC"})]


async def test_leaving_a_stream_early_closes_it(sim: Simulator, client: InferenceClient) -> None:
    sim.script(QWEN, Reply(content="one two three four five"))
    async with client.stream_chat(at(sim), request=ask()) as chunks:
        async for _ in chunks:
            break
    assert (await client.chat(at(sim), request=ask("again"))).message.text == "echo: again"


async def test_slow_first_token_times_out_then_succeeds_when_released(sim: Simulator) -> None:
    gate = sim.faults.hold_first_token(QWEN)
    async with InferenceClient(timeout_s=0.2) as impatient:
        with pytest.raises(BackendTimeout) as info:
            await impatient.chat(at(sim), request=ask())
        assert info.value.transient
        with pytest.raises(BackendTimeout):
            async with impatient.stream_chat(at(sim), request=ask()) as chunks:
                await collect(chunks)
    async with InferenceClient(timeout_s=10) as patient, trio.open_nursery() as nursery:
        result: list[str] = []

        async def run() -> None:
            answer = await patient.chat(at(sim), request=ask("late"))
            result.append(answer.message.text)

        nursery.start_soon(run)
        with trio.fail_after(5):
            await sim.wait_for(lambda: sim.count("/v1/chat/completions") == 3)
            await trio.testing.wait_all_tasks_blocked()
        assert sim.state.instances[QWEN].status == "generating"  # busy, so no idle TTL
        assert sim.state.advance(10_000) == []
        gate.set()
    assert result == ["echo: late"]


# -- completions and embeddings --


async def test_text_completion_and_its_stream(sim: Simulator, client: InferenceClient) -> None:
    sim.script(QWEN, Reply(content=" a profound question", finish_reason="length"))
    answer = await client.complete(
        at(sim), request=CompletionRequest(prompt="Life is", max_tokens=9)
    )
    assert answer.text == " a profound question"
    assert answer.choices[0].finish_reason == "length"
    async with client.stream_complete(at(sim), request=CompletionRequest(prompt="x y")) as chunks:
        text = "".join([c.choices[0].text async for c in chunks if c.choices])
    assert text == "echo: x y"


async def test_embeddings(sim: Simulator, client: InferenceClient) -> None:
    one = await client.embed(at(sim, EMBED), request=EmbeddingRequest(input="hello", ttl=60))
    assert len(one.vectors) == 1
    assert len(one.vectors[0]) == 8
    assert sim.state.loads[-1].ttl_s == 60  # JIT-loaded with the request's ttl
    many = await client.embed(at(sim, EMBED), request=EmbeddingRequest(input=["a", "b", "hello"]))
    assert [len(v) for v in many.vectors] == [8, 8, 8]
    assert many.vectors[2] == one.vectors[0]
    with pytest.raises(BackendRejected, match="not an embedding model"):
        await client.embed(at(sim), request=EmbeddingRequest(input="x"))


async def test_embedding_count_mismatch_is_a_protocol_error(
    sim: Simulator, client: InferenceClient
) -> None:
    body = b'{"object": "list", "data": [], "model": "m"}'
    sim.faults.route_raw["/v1/embeddings"] = (200, "application/json", body)
    with pytest.raises(BackendProtocolError, match="asked for 2 embeddings, got 0"):
        await client.embed(at(sim, EMBED), request=EmbeddingRequest(input=["a", "b"]))


# -- responses --


async def test_responses_are_stateful(sim: Simulator, client: InferenceClient) -> None:
    sim.script(OSS, Reply(content="17", reasoning="primes below 50"))
    first = await client.respond(
        at(sim, OSS),
        request=ResponsesRequest(
            input="A prime below 50?", reasoning=ReasoningParams(effort="low")
        ),
    )
    assert first.id.startswith("resp_")
    assert len(first.id) == 53
    assert first.output_text == "17"
    assert first.reasoning_text == "primes below 50"
    second = await client.respond(
        at(sim, OSS),
        request=ResponsesRequest(input="Another?", previous_response_id=first.id),
    )
    assert second.previous_response_id == first.id
    assert sim.responses[second.id].previous == first.id
    assert sim.requests("/v1/responses")[0].body["reasoning"] == {"effort": "low"}


async def test_responses_function_calls_round_trip(sim: Simulator, client: InferenceClient) -> None:
    sim.script(
        QWEN, Reply(tool_calls=(ScriptedCall(name="calc", arguments={"x": 2}, id="call_1"),))
    )
    tool = FunctionTool(name="calc", parameters={"type": "object", "properties": {}})
    asked = InputMessage(role="user", content=[InputText(text="double 2")])
    first = await client.respond(at(sim), request=ResponsesRequest(input=[asked], tools=[tool]))
    (call,) = first.function_calls
    assert (call.name, call.call_id, call.arguments_dict()) == ("calc", "call_1", {"x": 2})
    assert first.output_text == ""
    sent = sim.requests("/v1/responses")[0].body
    assert sent["tools"] == [
        {"type": "function", "name": "calc", "parameters": {"type": "object", "properties": {}}}
    ]
    assert sent["input"][0] == {
        "type": "message",
        "role": "user",
        "content": [{"type": "input_text", "text": "double 2"}],
    }
    result = FunctionCallOutput(call_id="call_1", output="4")
    second = await client.respond(
        at(sim), request=ResponsesRequest(input=[result], previous_response_id=first.id)
    )
    assert second.output_text == "echo: 4"


async def test_unknown_previous_response_is_rejected(
    sim: Simulator, client: InferenceClient
) -> None:
    with pytest.raises(BackendRejected, match="Prediction history node"):
        await client.respond(
            at(sim), request=ResponsesRequest(input="x", previous_response_id="resp_nope")
        )


async def test_stream_responses(sim: Simulator, client: InferenceClient) -> None:
    sim.script(OSS, Reply(content="Hello there friend", reasoning="greet"))
    async with client.stream_respond(at(sim, OSS), request=ResponsesRequest(input="hi")) as events:
        received = [e async for e in events]
    kinds = [e.type for e in received]
    assert kinds[0] == "response.created"
    assert kinds[-1] == "response.completed"
    text = "".join(e.delta or "" for e in received if e.type == "response.output_text.delta")
    assert text == "Hello there friend"
    final = received[-1].response
    assert final is not None
    assert final.output_text == "Hello there friend"
    assert final.reasoning_text == "greet"


async def test_responses_on_a_server_without_them(client: InferenceClient) -> None:
    async with open_simulator(api="openai") as sim:
        sim.preload(QWEN)
        with pytest.raises(EndpointNotSupported, match="does not offer it"):
            await client.respond(at(sim), request=ResponsesRequest(input="x"))


# -- the model is gone --


async def test_unknown_model_is_model_not_loaded(sim: Simulator, client: InferenceClient) -> None:
    with pytest.raises(ModelNotLoaded, match="Invalid model identifier"):
        await client.chat(at(sim, "nope/nothing"), request=ask())


async def test_evicted_model_without_jit_is_model_not_loaded() -> None:
    async with open_simulator(jit=False) as sim, InferenceClient(timeout_s=5) as client:
        sim.preload(QWEN)
        sim.preload(EMBED)
        assert (await client.chat(at(sim), request=ask())).message.text == "echo: hi"
        sim.evict(QWEN)
        with pytest.raises(ModelNotLoaded, match="Invalid model identifier"):
            await client.chat(at(sim), request=ask())
        sim.evict(EMBED)
        with pytest.raises(ModelNotLoaded, match="No models loaded"):
            await client.embed(at(sim, EMBED), request=EmbeddingRequest(input="x"))


async def test_no_models_loaded_in_the_string_error_shape(client: InferenceClient) -> None:
    async with open_simulator(api="v0", jit=False) as sim:
        with pytest.raises(ModelNotLoaded, match="No models loaded"):
            await client.complete(at(sim), request=CompletionRequest(prompt="x"))


async def test_model_unloaded_mid_request(sim: Simulator, client: InferenceClient) -> None:
    sim.faults.unload_during_inference.add(QWEN)
    with pytest.raises(ModelNotLoaded, match="Model unloaded"):
        await client.chat(at(sim), request=ask())
    assert sim.state.evictions == [QWEN]
    sim.preload(QWEN)
    with pytest.raises(ModelNotLoaded, match="Model unloaded"):
        async with client.stream_chat(at(sim), request=ask("a b c")) as chunks:
            await collect(chunks)


# -- the server misbehaves --


async def test_server_errors(sim: Simulator, client: InferenceClient) -> None:
    sim.faults.route_status["/v1/chat/completions"] = 503
    with pytest.raises(BackendServerError, match="HTTP 503"):
        await client.chat(at(sim), request=ask())
    with pytest.raises(BackendServerError):
        async with client.stream_chat(at(sim), request=ask()) as chunks:
            await collect(chunks)
    del sim.faults.route_status["/v1/chat/completions"]
    sim.faults.route_error_200["/v1/chat/completions"] = "Trying to keep the first 15857 tokens"
    with pytest.raises(BackendRejected, match="15857 tokens"):
        await client.chat(at(sim), request=ask())
    with pytest.raises(BackendRejected, match="15857 tokens"):
        async with client.stream_chat(at(sim), request=ask()) as chunks:
            await collect(chunks)


@pytest.mark.parametrize(
    ("body", "match"),
    [
        (b"<html>Bad Gateway</html>", "HTML"),
        (b'{"id": "x", "choices": [{"message": {"role": 5}}]}', "unexpected answer shape"),
        (b'{"id": "x", "choices": []}', "no choices"),
        (b'{"id": "x"}', "unexpected answer shape"),
    ],
)
async def test_malformed_answers(
    sim: Simulator, client: InferenceClient, body: bytes, match: str
) -> None:
    sim.faults.route_raw["/v1/chat/completions"] = (200, "application/json", body)
    with pytest.raises(BackendProtocolError, match=match):
        await client.chat(at(sim), request=ask())


async def test_malformed_stream_events(sim: Simulator, client: InferenceClient) -> None:
    frames = b'data: {"choices": []}\n\ndata: {oops\n\n'
    sim.faults.route_raw["/v1/chat/completions"] = (200, "text/event-stream", frames)
    with pytest.raises(BackendProtocolError, match="malformed JSON in a stream event"):
        async with client.stream_chat(at(sim), request=ask()) as chunks:
            await collect(chunks)
    sim.faults.route_raw["/v1/chat/completions"] = (200, "application/json", b'{"choices": []}')
    with pytest.raises(BackendProtocolError, match="expected an event stream"):
        async with client.stream_chat(at(sim), request=ask()) as chunks:
            await collect(chunks)


async def test_body_limit(sim: Simulator) -> None:
    sim.script(QWEN, Reply(content="x" * 5000))
    async with InferenceClient(max_body_bytes=1000) as small:
        with pytest.raises(BackendProtocolError, match="larger than 1000 bytes"):
            await small.chat(at(sim), request=ask())


async def test_auth_headers_are_passed_through() -> None:
    async with open_simulator(api_token="sk-lm-a:b") as sim, InferenceClient() as client:
        sim.preload(QWEN)
        with pytest.raises(BackendAuthError, match="LMSTUDIO_API_TOKEN"):
            await client.chat(at(sim), request=ask())
        with pytest.raises(BackendAuthError):
            async with client.stream_chat(at(sim), request=ask()) as chunks:
                await collect(chunks)
        authorized = InferenceTarget(
            model=QWEN,
            identifier=QWEN,
            base_url=sim.openai_url,
            headers={"Authorization": "Bearer sk-lm-a:b"},
        )
        answer = await client.chat(authorized, request=ask())
        assert answer.message.text == "echo: hi"


async def test_unreachable(client: InferenceClient) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    nowhere = InferenceTarget(
        model=QWEN, identifier=QWEN, base_url=f"http://127.0.0.1:{port}/v1", headers={}
    )
    with pytest.raises(BackendUnreachable):
        await client.chat(nowhere, request=ask())
    with pytest.raises(BackendUnreachable):
        async with client.stream_chat(nowhere, request=ask()):
            pass


# -- plumbing --


async def test_a_shared_http_client_is_not_closed(sim: Simulator) -> None:
    async with httpx.AsyncClient() as http:
        async with InferenceClient(http) as client:
            await client.chat(at(sim), request=ask())
        assert not http.is_closed
    with pytest.raises(InvalidRequest):
        InferenceClient(timeout_s=0)


async def test_unscripted_inference_is_forwarded_upstream(client: InferenceClient) -> None:
    async with open_simulator() as upstream:
        upstream.script(QWEN, Reply(content="from upstream"), Reply(content="streamed upstream"))
        async with open_simulator(upstream=upstream.openai_url) as sim:
            sim.preload(QWEN)
            answer = await client.chat(at(sim), request=ask())
            assert answer.message.text == "from upstream"
            async with client.stream_chat(at(sim), request=ask()) as chunks:
                acc = ChatStreamAccumulator()
                async for chunk in chunks:
                    acc.add(chunk)
            assert acc.result().message.text == "streamed upstream"
            vectors = await client.embed(at(sim, EMBED), request=EmbeddingRequest(input="a"))
            assert len(vectors.vectors[0]) == 8
        assert upstream.count("/v1/chat/completions") == 2
