"""Transport failures of inference, classified by when they happened (issue 16).

A refused connection and one closed before any answer lost nothing (the core
may retry them on a fresh instance); a stream cut after part of the answer
arrived says so. Each case is played by a raw loopback server.
"""

from __future__ import annotations

import msgspec
import pytest
import trio

from mcp_frontend.errors import message_for
from orchestrator.errors import BackendUnreachable, ConnectionDropped, NotAnswered, StreamCut
from orchestrator.inference import InferenceClient
from orchestrator.inference.target import InferenceTarget
from orchestrator.inference.types import ChatMessage, ChatRequest
from tests.loopback import STREAM_HEAD, chunk, loopback, refused_port

MODEL = "m"
REQUEST = ChatRequest(messages=[ChatMessage(role="user", content="hi")])
EVENT = msgspec.json.encode(
    {"choices": [{"index": 0, "delta": {"role": "assistant", "content": "Hel"}}]}
)


def at(base_url: str) -> InferenceTarget:
    return InferenceTarget(model=MODEL, identifier=MODEL, base_url=base_url, headers={})


async def close_at_once(_stream: trio.SocketStream) -> None:
    await trio.lowlevel.checkpoint()  # the request was read; no byte of an answer


async def stream_head_only(stream: trio.SocketStream) -> None:
    await stream.send_all(STREAM_HEAD)


async def stream_one_event(stream: trio.SocketStream) -> None:
    await stream.send_all(STREAM_HEAD + chunk(b"data: " + EVENT + b"\n\n"))


async def test_a_refused_connection_is_not_answered() -> None:
    async with InferenceClient(timeout_s=10) as client:
        with trio.fail_after(10), pytest.raises(NotAnswered) as caught:
            await client.chat(at(f"http://127.0.0.1:{refused_port()}/v1"), REQUEST)
    assert not isinstance(caught.value, ConnectionDropped)
    assert "cannot connect" in str(caught.value)


async def test_a_connection_closed_before_the_answer_is_dropped_not_unreachable() -> None:
    async with loopback(close_at_once) as server, InferenceClient(timeout_s=10) as client:
        with trio.fail_after(10), pytest.raises(ConnectionDropped) as caught:
            await client.chat(at(server.base_url), REQUEST)
    assert len(server.requests) == 1
    assert "closed the connection before answering" in str(caught.value)
    # What a calling model reads names what happened, not a server that is down.
    text = message_for(caught.value)
    assert "is the model server running" not in text
    assert "dropped the request" in text


async def read_stream(client: InferenceClient, base_url: str, into: list[str | None]) -> None:
    async with client.stream_chat(at(base_url), REQUEST) as chunks:
        async for item in chunks:
            into.append(item.choices[0].delta.content)


async def test_a_stream_closed_before_its_first_event_is_dropped() -> None:
    received: list[str | None] = []
    async with loopback(stream_head_only) as server, InferenceClient(timeout_s=10) as client:
        with trio.fail_after(10), pytest.raises(ConnectionDropped):
            await read_stream(client, server.base_url, received)
    assert received == []


async def test_a_stream_cut_mid_answer_says_how_much_arrived() -> None:
    received: list[str | None] = []
    async with loopback(stream_one_event) as server, InferenceClient(timeout_s=10) as client:
        with trio.fail_after(10), pytest.raises(StreamCut) as caught:
            await read_stream(client, server.base_url, received)
    assert received == ["Hel"]
    error = caught.value
    assert isinstance(error, BackendUnreachable)
    assert not isinstance(error, NotAnswered)  # part of the answer was handed out
    assert "cut after 1 event(s)" in str(error)
    assert "incomplete" in message_for(error)
    assert "is the model server running" not in message_for(error)
