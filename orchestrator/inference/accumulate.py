"""Rebuild a whole chat completion from its stream chunks.

Streamed tool calls arrive as fragments that share an ``index``: the first
carries ``id`` and ``name``, later ones append to ``arguments`` (LM Studio
before 0.3.16 repeated an empty ``name`` in continuations; both forms work).
"""

from __future__ import annotations

import msgspec

from orchestrator.inference.types import (
    ChatChoice,
    ChatCompletion,
    ChatCompletionChunk,
    ChatMessage,
    FunctionCall,
    ToolCall,
    Usage,
)

__all__ = ["ChatStreamAccumulator"]


class _PartialCall(msgspec.Struct, kw_only=True):
    id: str | None = None
    name: str = ""
    arguments: str = ""


class ChatStreamAccumulator:
    """Collects :class:`ChatCompletionChunk` objects of the first choice.

    Example:
        acc = ChatStreamAccumulator()
        async for chunk in chunks:
            acc.add(chunk)
        completion = acc.result()
    """

    def __init__(self) -> None:
        self._id = ""
        self._model = ""
        self._created = 0
        self._content: list[str] = []
        self._reasoning: list[str] = []
        self._calls: dict[int, _PartialCall] = {}
        self._finish: str | None = None
        self._usage: Usage | None = None

    def add(self, chunk: ChatCompletionChunk) -> None:
        """Fold one chunk in."""
        self._id = self._id or chunk.id
        self._model = self._model or chunk.model
        self._created = self._created or chunk.created
        self._usage = chunk.usage or self._usage
        for choice in chunk.choices:
            if choice.index != 0:
                continue
            delta = choice.delta
            if delta.content:
                self._content.append(delta.content)
            if delta.reasoning_text:
                self._reasoning.append(delta.reasoning_text)
            for frag in delta.tool_calls or ():
                call = self._calls.setdefault(frag.index, _PartialCall())
                call.id = call.id or frag.id
                if frag.function is not None:
                    call.name = call.name or (frag.function.name or "")
                    call.arguments += frag.function.arguments or ""
            self._finish = choice.finish_reason or self._finish

    def result(self) -> ChatCompletion:
        """Return the completion the chunks add up to."""
        calls = [
            ToolCall(id=c.id, function=FunctionCall(name=c.name, arguments=c.arguments))
            for _, c in sorted(self._calls.items())
        ]
        message = ChatMessage(
            role="assistant",
            content="".join(self._content) if self._content or not calls else None,
            tool_calls=calls or None,
            reasoning_content="".join(self._reasoning) or None,
        )
        return ChatCompletion(
            id=self._id,
            created=self._created,
            model=self._model,
            choices=[ChatChoice(message=message, finish_reason=self._finish)],
            usage=self._usage,
        )
