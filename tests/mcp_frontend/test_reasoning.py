"""Issue 17, F7: ``chat_completion`` can really switch reasoning off.

LM Studio ignores ``reasoning_effort: "off"`` on ``/v1/chat/completions``
(BT#2413) and honours ``reasoning: {"effort": "none"}`` on ``/v1/responses``
(BT#988 comment); the simulator models both (docs/backends.md).
"""

from __future__ import annotations

import pytest

from tests.fakes import Reply
from tests.mcp_frontend.mcp_support import QWEN, LMStudio, error, ok


async def test_reasoning_off_goes_through_responses_and_comes_back_as_a_chat_answer(
    lm: LMStudio,
) -> None:
    lm.sim.script(QWEN, Reply(content="Paris.", reasoning="the capital of France is Paris"))
    out = ok(
        await lm.client.call_tool(
            "chat_completion",
            {
                "messages": [{"role": "user", "content": "capital of France?"}],
                "system_prompt": "be brief",
                "reasoning": "off",
                "max_tokens": 64,
            },
        )
    )
    assert (out["content"], out["reasoning"], out["finish_reason"]) == ("Paris.", None, "stop")
    assert out["identifier"] == QWEN
    assert out["usage"] is not None
    assert out["warning"] is None
    (sent,) = [r.body for r in lm.sim.requests("/v1/responses")]
    assert sent["reasoning"] == {"effort": "none"}
    assert sent["store"] is False
    assert sent["max_output_tokens"] == 64
    assert [(i["role"], i["content"]) for i in sent["input"]] == [
        ("system", "be brief"),
        ("user", "capital of France?"),
    ]
    assert lm.sim.requests("/v1/chat/completions") == []


async def test_a_reasoning_effort_stays_on_chat_completions(lm: LMStudio) -> None:
    lm.sim.script(QWEN, Reply(content="4", reasoning="2+2"))
    out = ok(await lm.client.call_tool("chat_completion", {"prompt": "2+2?", "reasoning": "high"}))
    assert (out["content"], out["reasoning"]) == ("4", "2+2")
    (sent,) = [r.body for r in lm.sim.requests("/v1/chat/completions")]
    assert sent["reasoning_effort"] == "high"
    assert "chat_template_kwargs" not in sent


async def test_an_answer_cut_short_with_reasoning_off_says_so(lm: LMStudio) -> None:
    lm.sim.script(QWEN, Reply(content="", finish_reason="length"))
    out = ok(
        await lm.client.call_tool(
            "chat_completion", {"prompt": "hi", "reasoning": "off", "max_tokens": 1}
        )
    )
    assert out["content"] == ""
    assert out["warning"] is not None


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ({"reasoning_effort": "low"}, "give 'reasoning' or 'reasoning_effort', not both"),
        (
            {"response_format": {"type": "text"}},
            "takes no response_format here: drop one of them",
        ),
    ],
)
async def test_reasoning_off_refuses_what_it_cannot_honour(
    lm: LMStudio, extra: dict[str, object], expected: str
) -> None:
    args = {"prompt": "hi", "reasoning": "off", **extra}
    assert expected in error(await lm.client.call_tool("chat_completion", args))
    assert lm.sim.requests("/v1/responses") == []


async def test_on_llama_cpp_reasoning_off_is_the_chat_template_switch(
    lm: LMStudio, monkeypatch: pytest.MonkeyPatch
) -> None:
    """llama.cpp passes chat_template_kwargs to the template (ggml-org/llama.cpp#13196)."""
    monkeypatch.setattr(lm.orch.backend, "name", "llamacpp")
    ok(await lm.client.call_tool("chat_completion", {"prompt": "hi", "reasoning": "off"}))
    (sent,) = [r.body for r in lm.sim.requests("/v1/chat/completions")]
    assert sent["chat_template_kwargs"] == {"enable_thinking": False}
    assert "reasoning_effort" not in sent
    assert lm.sim.requests("/v1/responses") == []
