"""The two wire modes of the agent loop, behind one small interface.

- :class:`ChatWire`: ``POST /v1/chat/completions`` with ``tools``. The whole
  conversation is kept here and sent each round: the assistant message with its
  ``tool_calls`` is appended as the model sent it, then one ``tool`` message per
  call with its ``tool_call_id``.
- :class:`ResponsesWire`: ``POST /v1/responses``. The server keeps the history;
  each round sends only the ``function_call_output`` items (one per ``call_id``)
  and chains with ``previous_response_id``.

Neither forces ``tool_choice``: the model decides whether a tool helps.

Context budget: the conversation is measured in characters (text, tool
arguments, tool outputs). In chat mode, when it outgrows the budget, the
oldest tool outputs are replaced by a short note (never those of the latest
round) until it fits; in responses mode the history lives on the server and
cannot be trimmed, so the run stops instead.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Literal, Protocol

import msgspec

from orchestrator.held_model import HeldModel
from orchestrator.inference import (
    ChatMessage,
    ChatRequest,
    FunctionCall,
    FunctionCallOutput,
    InferenceClient,
    ResponsesRequest,
    ResponsesTool,
    Tool,
    ToolCall,
)

__all__ = ["DROPPED_NOTE", "Call", "ChatWire", "Outcome", "ResponsesWire", "Turn", "Wire"]

DROPPED_NOTE: Final = "[output dropped: the conversation outgrew its context budget]"


Outcome = Literal["answer", "length", "content_filter"]
"""How a model answer without tool calls ended (a subset of the trace's stop reasons)."""


@dataclass(frozen=True)
class Call:
    """One tool call the model asked for; ``arguments`` is the raw JSON string."""

    id: str
    name: str
    arguments: str


@dataclass(frozen=True)
class Turn:
    """What one model answer amounts to, whatever the wire mode.

    Attributes:
        text: the assistant text ("" when there is none).
        reasoning: the reasoning, when the model produced any.
        calls: the tool calls, in the model's order.
        finish: ``finish_reason`` (chat) or ``status`` (responses).
        outcome: how the answer ended if it has no calls: ``answer``, ``length``,
            ``content_filter``.
    """

    text: str
    reasoning: str | None
    calls: tuple[Call, ...]
    finish: str | None
    outcome: Outcome


class Wire(Protocol):
    """A conversation with the model in one wire mode."""

    async def ask(self, model: HeldModel, round_: int) -> Turn:
        """Send the conversation so far and return the model's answer."""
        ...

    def answer(self, calls: Sequence[Call], outputs: Sequence[str]) -> None:
        """Record the tool outputs (same order as ``calls``) for the next request."""
        ...

    def fit(self, budget: int) -> tuple[bool, int]:
        """Bring the conversation within ``budget`` characters if possible.

        Returns whether it fits now and how many tool outputs were dropped.
        """
        ...


def _chat_outcome(finish: str | None) -> Outcome:
    if finish == "length":
        return "length"
    if finish == "content_filter":
        return "content_filter"
    return "answer"


class ChatWire:
    """Chat completions with ``tools``; the history is kept and resent here."""

    def __init__(
        self,
        client: InferenceClient,
        *,
        task: str,
        instructions: str | None,
        tools: list[Tool],
        max_tokens: int | None,
        temperature: float | None,
    ) -> None:
        self._client = client
        self.messages: list[ChatMessage] = []
        if instructions:
            self.messages.append(ChatMessage(role="system", content=instructions))
        self.messages.append(ChatMessage(role="user", content=task))
        self._tools = tools or None
        self._max_tokens = max_tokens
        self._temperature = temperature

    async def ask(self, model: HeldModel, round_: int) -> Turn:
        """Send the history; append the assistant message; return the answer."""
        request = ChatRequest(
            messages=self.messages,
            tools=self._tools,
            max_tokens=self._max_tokens,
            temperature=self._temperature,
        )

        completion = await model.send(functools.partial(self._client.chat, request=request))
        choice = completion.choices[0]
        message = choice.message
        calls = tuple(
            Call(
                id=tc.id or f"call_{round_}_{i}",
                name=tc.function.name or "",
                arguments=tc.function.arguments or "{}",
            )
            for i, tc in enumerate(message.tool_calls or ())
        )
        # The assistant message goes back as sent, ids filled in where the server
        # gave none (a tool message must name its call). Reasoning is not replayed:
        # chat templates drop it, and it would only eat the context budget.
        self.messages.append(
            ChatMessage(
                role="assistant",
                content=message.content if message.content is not None else "",
                tool_calls=[
                    ToolCall(
                        id=c.id,
                        type=tc.type,
                        function=FunctionCall(name=c.name, arguments=c.arguments),
                    )
                    for c, tc in zip(calls, message.tool_calls or (), strict=True)
                ]
                or None,
            )
        )
        return Turn(
            text=message.text,
            reasoning=message.reasoning_text,
            calls=calls,
            finish=choice.finish_reason,
            outcome=_chat_outcome(choice.finish_reason),
        )

    def answer(self, calls: Sequence[Call], outputs: Sequence[str]) -> None:
        """Append one ``tool`` message per call, answering its ``tool_call_id``."""
        self.messages.extend(
            ChatMessage(role="tool", tool_call_id=c.id, content=out)
            for c, out in zip(calls, outputs, strict=True)
        )

    def size(self) -> int:
        """The conversation's size in characters."""
        return sum(_message_size(m) for m in self.messages)

    def fit(self, budget: int) -> tuple[bool, int]:
        """Drop the oldest tool outputs (not the latest round's) until within ``budget``."""
        size, dropped = self.size(), 0
        # The latest round (its assistant message and what answers it) is always kept.
        latest = max((i for i, m in enumerate(self.messages) if m.role == "assistant"), default=0)
        for i in range(latest):
            if size <= budget:
                break
            msg = self.messages[i]
            if msg.role != "tool" or len(msg.text) <= len(DROPPED_NOTE):
                continue  # not an output, already dropped, or too short to gain anything
            size -= _message_size(msg) - len(DROPPED_NOTE)
            self.messages[i] = msgspec.structs.replace(msg, content=DROPPED_NOTE)
            dropped += 1
        return size <= budget, dropped


def _message_size(msg: ChatMessage) -> int:
    calls = sum(
        len(tc.function.name or "") + len(tc.function.arguments or "")
        for tc in msg.tool_calls or ()
    )
    return len(msg.text) + calls


class ResponsesWire:
    """The Responses API: the server keeps the history, chained by ``previous_response_id``."""

    def __init__(
        self,
        client: InferenceClient,
        *,
        task: str,
        instructions: str | None,
        tools: list[ResponsesTool],
        max_tokens: int | None,
        temperature: float | None,
    ) -> None:
        self._client = client
        self._input: str | list[FunctionCallOutput] = task
        self._instructions = instructions
        self._tools = tools or None
        self._max_tokens = max_tokens
        self._temperature = temperature
        self.previous_id: str | None = None
        self._size = len(task) + len(instructions or "")

    async def ask(self, model: HeldModel, round_: int) -> Turn:
        """Send the pending input after ``previous_response_id``; return the answer."""
        # Instructions and tools are not carried over by previous_response_id: resend them.
        request = ResponsesRequest(
            input=list(self._input) if isinstance(self._input, list) else self._input,
            instructions=self._instructions,
            previous_response_id=self.previous_id,
            tools=self._tools,
            max_output_tokens=self._max_tokens,
            temperature=self._temperature,
        )

        response = await model.send(functools.partial(self._client.respond, request=request))
        self.previous_id = response.id
        calls = tuple(
            Call(
                id=item.call_id or item.id or f"call_{round_}_{i}",
                name=item.name or "",
                arguments=_arguments(item.arguments),
            )
            for i, item in enumerate(response.function_calls)
        )
        text = response.output_text
        self._size += len(text) + sum(len(c.name) + len(c.arguments) for c in calls)
        status = response.status
        return Turn(
            text=text,
            reasoning=response.reasoning_text,
            calls=calls,
            finish=status,
            outcome="length" if status == "incomplete" else "answer",
        )

    def answer(self, calls: Sequence[Call], outputs: Sequence[str]) -> None:
        """Queue one ``function_call_output`` per call, answering its ``call_id``."""
        self._input = [
            FunctionCallOutput(call_id=c.id, output=out)
            for c, out in zip(calls, outputs, strict=True)
        ]
        self._size += sum(len(out) for out in outputs)

    def fit(self, budget: int) -> tuple[bool, int]:
        """The server's history cannot be trimmed: fits or not, nothing dropped."""
        return self._size <= budget, 0


def _arguments(raw: str | dict[str, object] | None) -> str:
    if raw is None:
        return "{}"
    if isinstance(raw, str):
        return raw
    return msgspec.json.encode(raw).decode()
