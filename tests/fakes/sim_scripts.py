"""Scripted model answers and the exact OpenAI-compatible shapes LM Studio returns.

A test queues :class:`Reply` objects per model (``sim.script(model, Reply(...))``);
each inference request on that model pops one. With an empty queue the model
echoes the last user text. Shapes follow ``reference/lmstudio-api.md`` §3:
``chatcmpl-`` ids, numeric-string tool-call ids, string ``arguments``, no
``content`` key next to tool calls, ``system_fingerprint`` and empty ``stats``
on ``/v1``, and SSE frames exactly as captured (role repeated in every delta,
an empty final delta, ``data: [DONE]``).
"""

from __future__ import annotations

import hashlib
import json
import random
import string
import time
from collections import deque
from typing import Any, Literal

import msgspec

__all__ = ["Reply", "ScriptedCall", "Scripts"]


class ScriptedCall(msgspec.Struct, frozen=True, kw_only=True):
    """A tool / function call the scripted model makes."""

    name: str
    arguments: dict[str, Any] | str = msgspec.field(default_factory=dict)
    id: str | None = None

    def arguments_json(self) -> str:
        """The arguments as the JSON string LM Studio sends."""
        if isinstance(self.arguments, str):
            return self.arguments
        return json.dumps(self.arguments, separators=(",", ":"))


class Reply(msgspec.Struct, frozen=True, kw_only=True):
    """One scripted model answer, used by chat, completions and responses alike.

    Attributes:
        content: the assistant text (``None`` with tool calls means no ``content`` key).
        tool_calls: calls the model makes (``finish_reason`` becomes ``tool_calls``).
        reasoning: reasoning text, sent under ``reasoning_key``.
        reasoning_key: ``reasoning_content`` (DeepSeek style) or ``reasoning`` (gpt-oss).
        finish_reason: overrides the natural one (``stop`` / ``tool_calls``).
    """

    content: str | None = None
    tool_calls: tuple[ScriptedCall, ...] = ()
    reasoning: str | None = None
    reasoning_key: Literal["reasoning_content", "reasoning"] = "reasoning_content"
    finish_reason: str | None = None

    @property
    def finish(self) -> str:
        """The finish reason to report."""
        return self.finish_reason or ("tool_calls" if self.tool_calls else "stop")


class Scripts:
    """Per-model queues of :class:`Reply` objects."""

    def __init__(self) -> None:
        self._queues: dict[str, deque[Reply]] = {}

    def push(self, model: str, *replies: Reply) -> None:
        """Queue replies for ``model`` (a key or an identifier)."""
        self._queues.setdefault(model, deque()).extend(replies)

    def pop(self, *names: str) -> Reply | None:
        """Pop the next reply for the first of ``names`` that has one."""
        for name in names:
            queue = self._queues.get(name)
            if queue:
                return queue.popleft()
        return None

    def pending(self, model: str) -> int:
        """How many replies are still queued for ``model``."""
        return len(self._queues.get(model, ()))


def _rand(n: int, alphabet: str = string.ascii_lowercase + string.digits) -> str:
    return "".join(random.choice(alphabet) for _ in range(n))


def response_id() -> str:
    """``resp_`` + 48 hex characters, as LM Studio makes them."""
    return "resp_" + _rand(48, "0123456789abcdef")


def last_user_text(messages: Any) -> str:
    """The text of the last user message of a chat request (or of responses input)."""
    if isinstance(messages, str):
        return messages
    for msg in reversed(messages if isinstance(messages, list) else []):
        if isinstance(msg, dict) and msg.get("role") == "user":
            return content_text(msg.get("content"))
    return ""


def content_text(content: Any) -> str:
    """Join the text parts of a string or a list of content parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return ""


def _tool_calls(reply: Reply) -> list[dict[str, Any]]:
    return [
        {
            "id": call.id or _rand(9, string.digits),
            "type": "function",
            "function": {"name": call.name, "arguments": call.arguments_json()},
        }
        for call in reply.tool_calls
    ]


def chat_body(model: str, reply: Reply, *, v0: bool, prompt_tokens: int) -> dict[str, Any]:
    """A non-streamed chat completion."""
    message: dict[str, Any] = {"role": "assistant"}
    if reply.tool_calls:
        message["tool_calls"] = _tool_calls(reply)
        if reply.content is not None:
            message["content"] = reply.content
    else:
        message["content"] = reply.content or ""
    if reply.reasoning is not None:
        message[reply.reasoning_key] = reply.reasoning
    completion = max(1, len((reply.content or "").split()))
    body: dict[str, Any] = {
        "id": "chatcmpl-" + _rand(21),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {"index": 0, "logprobs": None, "finish_reason": reply.finish, "message": message}
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion,
            "total_tokens": prompt_tokens + completion,
        },
    }
    if v0:
        body["stats"] = {"tokens_per_second": 42.0, "time_to_first_token": 0.01}
        body["model_info"] = {"arch": "sim", "quant": "Q4_K_M", "format": "gguf"}
        body["runtime"] = {"name": "llama.cpp-sim", "version": "1.0.0"}
    else:
        body["system_fingerprint"] = model
        body["stats"] = {}
    return body


def pieces(text: str) -> list[str]:
    """Split text into stream-sized pieces that join back exactly."""
    words = text.split(" ")
    return [w if i == 0 else " " + w for i, w in enumerate(words)] if text else []


def sse(data: Any, event: str | None = None) -> bytes:
    """One SSE frame."""
    head = f"event: {event}\n" if event else ""
    payload = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    return f"{head}data: {payload}\n\n".encode()


def chat_frames(model: str, reply: Reply, *, include_usage: bool) -> list[bytes]:
    """The SSE frames of a streamed chat completion, ``[DONE]`` included."""
    base = {
        "id": "chatcmpl-" + _rand(21),
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "system_fingerprint": model,
    }

    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return sse({**base, "choices": [choice]})

    frames = [
        chunk({"role": "assistant", reply.reasoning_key: p}) for p in pieces(reply.reasoning or "")
    ]
    frames += [chunk({"role": "assistant", "content": p}) for p in pieces(reply.content or "")]
    for index, call in enumerate(_tool_calls(reply)):
        args = call["function"]["arguments"]
        head = {**call, "index": index, "function": {"name": call["function"]["name"]}}
        head["function"]["arguments"] = ""
        frames.append(chunk({"role": "assistant", "tool_calls": [head]}))
        for part in (args[: len(args) // 2], args[len(args) // 2 :]):
            frag = {"index": index, "type": "function", "function": {"arguments": part}}
            frames.append(chunk({"tool_calls": [frag]}))
    frames.append(chunk({}, reply.finish))
    if include_usage:
        usage = {"prompt_tokens": 5, "completion_tokens": len(frames), "total_tokens": 5}
        frames.append(sse({**base, "choices": [], "usage": usage}))
    frames.append(sse("[DONE]"))
    return frames


def completion_body(model: str, text: str, finish: str) -> dict[str, Any]:
    """A non-streamed text completion."""
    return {
        "id": "cmpl-" + _rand(21),
        "object": "text_completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "text": text, "logprobs": None, "finish_reason": finish}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 9, "total_tokens": 14},
    }


def completion_frames(model: str, text: str, finish: str) -> list[bytes]:
    """The SSE frames of a streamed text completion."""
    base = {"id": "cmpl-" + _rand(21), "object": "text_completion", "model": model}
    frames = [
        sse({**base, "choices": [{"index": 0, "text": p, "finish_reason": None}]})
        for p in pieces(text)
    ]
    frames.append(sse({**base, "choices": [{"index": 0, "text": "", "finish_reason": finish}]}))
    return [*frames, sse("[DONE]")]


def embedding_vector(text: str, dims: int) -> list[float]:
    """A deterministic unit-ish vector for ``text``."""
    digest = hashlib.sha256(text.encode()).digest()
    return [round((digest[i % len(digest)] - 127.5) / 127.5, 6) for i in range(dims)]


def embeddings_body(model: str, inputs: list[str], dims: int) -> dict[str, Any]:
    """``/v1/embeddings`` (LM Studio reports zero usage)."""
    return {
        "object": "list",
        "data": [
            {"object": "embedding", "embedding": embedding_vector(t, dims), "index": i}
            for i, t in enumerate(inputs)
        ],
        "model": model,
        "usage": {"prompt_tokens": 0, "total_tokens": 0},
    }


def response_body(rid: str, model: str, reply: Reply, previous: str | None) -> dict[str, Any]:
    """A ``/v1/responses`` object with reasoning, message and function_call items."""
    output: list[dict[str, Any]] = []
    if reply.reasoning is not None:
        output.append(
            {
                "id": "rs_" + _rand(21),
                "type": "reasoning",
                "summary": [],
                "content": [{"type": "reasoning_text", "text": reply.reasoning}],
            }
        )
    output.extend(
        {
            "id": "fc_" + _rand(21),
            "type": "function_call",
            "status": "completed",
            "call_id": call.id or "call_" + _rand(12),
            "name": call.name,
            "arguments": call.arguments_json(),
        }
        for call in reply.tool_calls
    )
    if reply.content is not None or not reply.tool_calls:
        output.append(
            {
                "id": "msg_" + _rand(21),
                "type": "message",
                "status": "completed",
                "role": "assistant",
                "content": [
                    {"type": "output_text", "text": reply.content or "", "annotations": []}
                ],
            }
        )
    return {
        "id": rid,
        "object": "response",
        "created_at": int(time.time()),
        "status": "completed",
        "model": model,
        "output": output,
        "usage": {"input_tokens": 15, "output_tokens": 8, "total_tokens": 23},
        "previous_response_id": previous,
    }


def response_frames(body: dict[str, Any]) -> list[bytes]:
    """The SSE frames of a streamed response (``event:`` lines, OpenAI style)."""
    created = {**body, "status": "in_progress", "output": []}
    frames = [sse({"type": "response.created", "response": created}, "response.created")]
    seq = 1
    for index, item in enumerate(body["output"]):
        kind = {
            "reasoning": "response.reasoning_text.delta",
            "message": "response.output_text.delta",
        }
        if item["type"] in kind:
            for part in pieces(item["content"][0]["text"]):
                event = {"type": kind[item["type"]], "delta": part, "item_id": item["id"]}
                frames.append(
                    sse({**event, "output_index": index, "sequence_number": seq}, event["type"])
                )
                seq += 1
        done = {"type": "response.output_item.done", "item": item, "output_index": index}
        frames.append(sse(done, done["type"]))
    completed = {"type": "response.completed", "response": body}
    frames.append(sse(completed, "response.completed"))
    return frames
