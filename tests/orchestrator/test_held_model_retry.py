"""Inference that survives a lost instance, and the per-instance cap (issue 16, item 5).

A request that got no answer is retried once on a fresh lease only when the
backend's truth (its listing here) confirms the instance is gone; a stream cut
mid-answer is never retried; and a burst of waiters opens at most as many
connections at once as the instance serves. The model server is a raw
loopback server; the backend is the fake, pointed at it.
"""

from __future__ import annotations

import functools

import msgspec
import pytest
import trio
import trio.testing

from orchestrator import Orchestrator, State, hold_model, open_orchestrator
from orchestrator.errors import ConnectionDropped, StreamCut
from orchestrator.inference import InferenceClient
from orchestrator.inference.target import InferenceTarget
from orchestrator.inference.types import ChatCompletion, ChatMessage, ChatRequest
from orchestrator.testing import FakeBackend
from tests.loopback import STREAM_HEAD, Loopback, chunk, json_response, loopback

MODEL = "m"
REQUEST = ChatRequest(messages=[ChatMessage(role="user", content="hi")])
ANSWER = msgspec.json.encode(
    {"choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello"}}]}
)
EVENT = msgspec.json.encode({"choices": [{"index": 0, "delta": {"content": "Hel"}}]})


class LoopbackBackend(FakeBackend):
    """The fake backend, serving inference at a loopback server."""

    def __init__(self, base: str = "", parallel: int | None = None) -> None:
        super().__init__([MODEL])
        self.base = base
        self.parallel = parallel

    def base_url(self, identifier: str) -> str:
        return self.base


class SlotsBackend(LoopbackBackend):
    """A backend that knows how many requests an instance serves at once."""

    def max_parallel(self, identifier: str) -> int | None:
        return self.parallel


def requests(orch: Orchestrator) -> dict[str, float]:
    counts: dict[str, float] = {}
    for outcome in ("ok", "lost", "error"):
        labels = {"model": MODEL, "endpoint": "chat", "outcome": outcome}
        found = orch.metrics.registry.get_sample_value("lmsorch_inference_requests_total", labels)
        if found is not None:
            counts[outcome] = found
    return counts


async def chat(orch: Orchestrator, client: InferenceClient) -> ChatCompletion:
    async with hold_model(orch, MODEL, endpoint="chat") as held:
        return await held.send(functools.partial(client.chat, request=REQUEST))


async def test_a_dropped_request_to_a_gone_instance_is_retried_once_after_a_reload() -> None:
    backend = LoopbackBackend()

    async def drop_first(stream: trio.SocketStream) -> None:
        if len(server.requests) == 1:
            backend.vanish(MODEL)  # the instance died with the connection
            return
        await stream.send_all(json_response(ANSWER))

    with trio.fail_after(10):
        async with loopback(drop_first) as server, InferenceClient(timeout_s=10) as client:
            backend.base = server.base_url
            async with open_orchestrator(backend) as orch:
                answer = await chat(orch, client)
                assert answer.message.content == "Hello"
                assert backend.count("load", MODEL) == 2  # reloaded once, then retried
                assert len(server.requests) == 2
                assert requests(orch) == {"lost": 1, "ok": 1}


async def test_a_dropped_request_to_a_listed_instance_is_not_retried() -> None:
    backend = LoopbackBackend()

    async def drop(_stream: trio.SocketStream) -> None:
        await trio.lowlevel.checkpoint()

    with trio.fail_after(10):
        async with loopback(drop) as server, InferenceClient(timeout_s=10) as client:
            backend.base = server.base_url
            async with open_orchestrator(backend) as orch:
                with pytest.raises(ConnectionDropped):
                    await chat(orch, client)
                assert len(server.requests) == 1  # never guessed lost: one try
                assert backend.count("load", MODEL) == 1
                assert orch.status()[0].state is State.READY
                assert requests(orch) == {"error": 1}


async def test_an_instance_gone_twice_in_a_row_fails_saying_so() -> None:
    backend = LoopbackBackend()

    async def always_die(_stream: trio.SocketStream) -> None:
        backend.vanish(MODEL)
        await trio.lowlevel.checkpoint()

    with trio.fail_after(10):
        async with loopback(always_die) as server, InferenceClient(timeout_s=10) as client:
            backend.base = server.base_url
            async with open_orchestrator(backend) as orch:
                with pytest.raises(ConnectionDropped, match="the instance is gone"):
                    await chat(orch, client)
                assert len(server.requests) == 2
                assert backend.count("load", MODEL) == 2


async def test_a_stream_cut_by_a_dying_instance_is_not_retried_and_says_why() -> None:
    backend = LoopbackBackend()

    async def die_mid_stream(stream: trio.SocketStream) -> None:
        await stream.send_all(STREAM_HEAD + chunk(b"data: " + EVENT + b"\n\n"))
        backend.vanish(MODEL)

    async def stream(target: InferenceTarget) -> list[str | None]:
        async with client.stream_chat(target, REQUEST) as chunks:
            return [item.choices[0].delta.content async for item in chunks]

    with trio.fail_after(10):
        async with loopback(die_mid_stream) as server, InferenceClient(timeout_s=10) as client:
            backend.base = server.base_url
            async with open_orchestrator(backend) as orch:
                async with hold_model(orch, MODEL, endpoint="chat") as held:
                    with pytest.raises(StreamCut) as caught:
                        await held.send(stream)
                message = str(caught.value)
                assert "cut after 1 event(s)" in message
                assert f"the backend no longer lists {MODEL!r}" in message
                assert len(server.requests) == 1
                assert backend.count("load", MODEL) == 1
                await trio.testing.wait_all_tasks_blocked()  # the actor read its mailbox
                assert orch.status()[0].state is State.UNLOADED  # reported lost


async def burst(backend: LoopbackBackend, waiters: int) -> Loopback:
    """Send ``waiters`` chats at once; the server answers each only once all tasks wait."""

    async def answer_when_all_wait(stream: trio.SocketStream) -> None:
        await trio.testing.wait_all_tasks_blocked()  # every request that can connect, has
        await stream.send_all(json_response(ANSWER))

    async with loopback(answer_when_all_wait) as server, InferenceClient(timeout_s=10) as client:
        backend.base = server.base_url
        async with open_orchestrator(backend) as orch:
            await orch.ensure_loaded(MODEL)
            async with trio.open_nursery() as nursery:
                for _ in range(waiters):
                    nursery.start_soon(chat, orch, client)
            assert requests(orch) == {"ok": waiters}
    return server


async def test_a_burst_opens_at_most_the_instances_parallelism_of_connections() -> None:
    with trio.fail_after(20):
        capped = await burst(SlotsBackend(parallel=3), 20)
        uncapped = await burst(LoopbackBackend(), 20)  # the same burst, nothing known
    assert capped.served == 20
    assert capped.most_open == 3
    # The measurement sees a burst: without a known parallelism all 20 connect at once.
    assert uncapped.most_open == 20
