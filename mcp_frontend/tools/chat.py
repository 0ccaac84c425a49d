"""Chat requests and answers, shared by ``chat_completion`` and ``analyze_image``.

Everything here runs before or after the model is touched: building a
:class:`ChatRequest` validates the input (nothing invalid reaches a backend),
and converting an answer separates reasoning from the answer and, for a
``json_schema`` response format, decodes and checks the answer.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec

from mcp_frontend.checks.json_schema import answer_errors, check_schema
from mcp_frontend.errors import ToolError
from mcp_frontend.settings import FrontendSettings
from mcp_frontend.tools.io_types import ChatOut, ResponseFormatIn, UsageOut, usage_out
from orchestrator import InferenceTarget
from orchestrator.inference import (
    ChatCompletion,
    ChatMessage,
    InputMessage,
    JsonSchema,
    ModelResponse,
    ReasoningParams,
    ResponseFormat,
    ResponsesRequest,
)

__all__ = [
    "chat_out",
    "empty_answer_warning",
    "reasoning_off_request",
    "response_format",
    "responses_chat_out",
    "split_reasoning",
]

# Models whose reasoning the server does not parse put it inline, first, in <think> tags.
_THINK = re.compile(r"^\s*<think>(.*?)</think>\s*", re.DOTALL)
_FENCE = re.compile(r"^\s*```(?:json)?\s*(.*?)\s*```\s*$", re.DOTALL)


def response_format(
    fmt: ResponseFormatIn | None, settings: FrontendSettings
) -> tuple[ResponseFormat | None, dict[str, Any] | None]:
    """Validate a requested response format; return it and the schema answers must follow.

    Raises:
        ToolError: the format lacks its schema, or the schema is invalid.
    """
    if fmt is None:
        return None, None
    if fmt["type"] == "text":
        return ResponseFormat(type="text"), None
    spec = fmt.get("json_schema")
    if spec is None:
        raise ToolError("response_format.json_schema is required when type is 'json_schema'")
    report = check_schema(
        spec["schema"], max_depth=settings.max_schema_depth, max_bytes=settings.max_schema_bytes
    )
    if not report.valid:
        raise ToolError(
            "response_format.json_schema.schema is invalid: " + "; ".join(report.errors)
        )
    schema = JsonSchema(name=spec["name"], schema=spec["schema"], strict=spec.get("strict"))
    return ResponseFormat(type="json_schema", json_schema=schema), spec["schema"]


def split_reasoning(content: str, reasoning: str | None) -> tuple[str, str | None]:
    """Return ``(answer, reasoning)``, moving a leading ``<think>`` block out of the answer."""
    if reasoning:
        return content, reasoning
    match = _THINK.match(content)
    if match is None:
        return content, None
    return content[match.end() :], match.group(1).strip() or None


def _decode(answer: str, schema: dict[str, Any]) -> tuple[Any, list[str]]:
    fenced = _FENCE.match(answer)
    try:
        parsed = msgspec.json.decode(fenced.group(1) if fenced else answer)
    except msgspec.DecodeError as exc:
        return None, [f"the answer is not valid JSON: {exc}"]
    return parsed, answer_errors(parsed, schema)


def chat_out(
    answer: ChatCompletion, target: InferenceTarget, schema: dict[str, Any] | None
) -> ChatOut:
    """Convert a chat answer; with ``schema``, decode the answer and check it."""
    message = answer.message
    content, reasoning = split_reasoning(message.text, message.reasoning_text)
    parsed, errors = (None, []) if schema is None else _decode(content, schema)
    return ChatOut(
        model=target.model,
        identifier=target.identifier,
        content=content,
        reasoning=reasoning,
        finish_reason=answer.finish_reason,
        usage=usage_out(answer.usage),
        parsed=parsed,
        schema_errors=errors,
        warning=empty_answer_warning(content, answer.finish_reason == "length", reasoning),
    )


def reasoning_off_request(
    messages: list[ChatMessage], max_tokens: int | None, temperature: float | None
) -> ResponsesRequest:
    """The chat as a Responses request with reasoning switched off.

    LM Studio ignores ``reasoning_effort: "off"`` on ``/v1/chat/completions``
    (BT#2413) but honours ``reasoning: {"effort": "none"}`` on ``/v1/responses``
    (BT#988 comment, 2026-08). Nothing is stored on the server (``store: false``).
    """
    return ResponsesRequest(
        input=[InputMessage(role=m.role, content=m.text) for m in messages],
        reasoning=ReasoningParams(effort="none"),
        max_output_tokens=max_tokens,
        temperature=temperature,
        store=False,
    )


def responses_chat_out(answer: ModelResponse, target: InferenceTarget) -> ChatOut:
    """Convert a Responses answer (from :func:`reasoning_off_request`) to the chat output."""
    usage = answer.usage
    limited = answer.status == "incomplete"
    return ChatOut(
        model=target.model,
        identifier=target.identifier,
        content=answer.output_text,
        reasoning=answer.reasoning_text,
        finish_reason="length" if limited else "stop",
        usage=None
        if usage is None
        else UsageOut(
            prompt_tokens=usage.input_tokens,
            completion_tokens=usage.output_tokens,
            total_tokens=usage.total_tokens,
        ),
        parsed=None,
        schema_errors=[],
        warning=empty_answer_warning(answer.output_text, limited, answer.reasoning_text),
    )


def empty_answer_warning(answer: str, limit_reached: bool, reasoning: str | None) -> str | None:
    """Say why an answer is empty, when LM Studio is known to answer so.

    Reasoning models can spend all of ``max_tokens`` thinking and answer with
    empty content (LM Studio BT#1990 on 0.4.15; BT#2284 on 0.4.21, where even the
    reasoning can be empty). A prompt longer than the loaded context can come back
    as a well-formed answer with no content at all (BT#2339, llama.cpp engine).
    """
    if answer.strip():
        return None
    if limit_reached:
        return (
            "the token limit ran out before the model wrote any answer (reasoning models can "
            "spend it all thinking): raise max_tokens, or switch reasoning off "
            "(chat_completion with reasoning 'off', create_response with reasoning_effort 'off')"
        )
    if reasoning:
        return None
    return (
        "the model returned nothing; LM Studio answers so when the prompt does not fit the "
        "context the model is loaded with (list_models shows it per instance): shorten the "
        "prompt, or load the model with a longer context"
    )
