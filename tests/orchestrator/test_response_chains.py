"""Emulated Responses chains: history kept per response id, within a TTL and size bounds."""

from __future__ import annotations

import msgspec
import pytest

from orchestrator.inference import InputMessage, ModelResponse, ResponsesRequest
from orchestrator.response_chains import ResponseChains, UnknownResponse


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _answer(rid: str, text: str) -> ModelResponse:
    part = {"type": "output_text", "text": text}
    raw = {"id": rid, "output": [{"type": "message", "content": [part]}]}
    return msgspec.json.decode(msgspec.json.encode(raw), type=ModelResponse)


def turns(request: ResponsesRequest) -> list[tuple[str, str]]:
    assert isinstance(request.input, list)
    out = []
    for item in request.input:
        assert isinstance(item, InputMessage)
        assert isinstance(item.content, str)
        out.append((item.role, item.content))
    return out


def step(chains: ResponseChains, rid: str, text: str, reply: str, prev: str | None = None) -> None:
    sent = chains.expand("m", ResponsesRequest(input=text, previous_response_id=prev))
    chains.record("m", sent, _answer(rid, reply))


def test_a_continued_id_is_sent_as_the_history_then_the_new_input() -> None:
    chains = ResponseChains()
    step(chains, "r1", "My name is Ann.", "Hi Ann!")

    sent = chains.expand("m", ResponsesRequest(input="Who am I?", previous_response_id="r1"))

    assert sent.previous_response_id is None
    assert turns(sent) == [
        ("user", "My name is Ann."),
        ("assistant", "Hi Ann!"),
        ("user", "Who am I?"),
    ]


def test_a_request_that_continues_nothing_is_unchanged() -> None:
    request = ResponsesRequest(input="hi")
    assert ResponseChains().expand("m", request) is request


def test_an_unknown_id_or_another_models_id_is_refused() -> None:
    chains = ResponseChains()
    step(chains, "r1", "a", "b")

    with pytest.raises(UnknownResponse, match="unknown or expired response id 'nope'"):
        chains.expand("m", ResponsesRequest(input="x", previous_response_id="nope"))
    with pytest.raises(UnknownResponse, match="belongs to model 'm', not 'other'"):
        chains.expand("other", ResponsesRequest(input="x", previous_response_id="r1"))


def test_a_chain_expires_ttl_after_its_last_use() -> None:
    clock = Clock()
    chains = ResponseChains(ttl_s=10, clock=clock)
    step(chains, "r1", "a", "b")
    clock.now = 9
    chains.expand("m", ResponsesRequest(input="x", previous_response_id="r1"))  # renews it
    clock.now = 18

    chains.expand("m", ResponsesRequest(input="x", previous_response_id="r1"))
    clock.now = 28.5
    with pytest.raises(UnknownResponse):
        chains.expand("m", ResponsesRequest(input="x", previous_response_id="r1"))
    assert len(chains) == 0


def test_the_least_recently_used_chain_is_evicted_beyond_max_chains() -> None:
    chains = ResponseChains(max_chains=2)
    step(chains, "r1", "a", "b")
    step(chains, "r2", "c", "d")
    chains.expand("m", ResponsesRequest(input="x", previous_response_id="r1"))
    step(chains, "r3", "e", "f")

    assert len(chains) == 2
    with pytest.raises(UnknownResponse):
        chains.expand("m", ResponsesRequest(input="x", previous_response_id="r2"))
    chains.expand("m", ResponsesRequest(input="x", previous_response_id="r1"))


def test_a_long_chain_keeps_its_most_recent_turns_within_max_chars() -> None:
    chains = ResponseChains(max_chars=10)
    step(chains, "r1", "aaaa", "bbbb")
    step(chains, "r2", "cccc", "dddd", prev="r1")

    sent = chains.expand("m", ResponsesRequest(input="e", previous_response_id="r2"))

    assert turns(sent) == [("user", "cccc"), ("assistant", "dddd"), ("user", "e")]


def test_bounds_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        ResponseChains(max_chains=0)
