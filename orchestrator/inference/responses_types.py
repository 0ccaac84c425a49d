"""Wire Structs of ``POST /v1/responses`` (LM Studio 0.3.29+, stateful).

Shapes follow ``reference/lmstudio-api.md`` §3.5 and the OpenAI Responses API.
Requests are typed (tagged unions on ``type``); output items are decoded into
one tolerant :class:`OutputItem`, because servers add item types
(``reasoning``, ``mcp_call`` ...) faster than clients learn them. Function
tools use the flat form (``name`` at the top level, no nested ``function``).
Function-call ``arguments`` arrive as a JSON string, sometimes as an object.
"""

from __future__ import annotations

from typing import Any

import msgspec

__all__ = [
    "FunctionCallInput",
    "FunctionCallOutput",
    "FunctionTool",
    "InputImage",
    "InputItem",
    "InputMessage",
    "InputText",
    "McpTool",
    "ModelResponse",
    "OutputContent",
    "OutputItem",
    "OutputText",
    "ReasoningParams",
    "ResponseStreamEvent",
    "ResponseUsage",
    "ResponsesRequest",
    "ResponsesTool",
]

# -- request --


class InputText(msgspec.Struct, kw_only=True, tag="input_text", tag_field="type"):
    """Text in an input message."""

    text: str


class InputImage(
    msgspec.Struct, kw_only=True, omit_defaults=True, tag="input_image", tag_field="type"
):
    """An image (a ``data:`` URI) in an input message."""

    image_url: str
    detail: str | None = None


class OutputText(msgspec.Struct, kw_only=True, tag="output_text", tag_field="type"):
    """Assistant text replayed as history."""

    text: str


class InputMessage(msgspec.Struct, kw_only=True, tag="message", tag_field="type"):
    """A message input item (``user``, ``assistant``, ``system``, ``developer``)."""

    role: str
    content: str | list[InputText | InputImage | OutputText]


class FunctionCallOutput(
    msgspec.Struct, kw_only=True, tag="function_call_output", tag_field="type"
):
    """The result of a function call, answering the output item with ``call_id``."""

    call_id: str
    output: str


class FunctionCallInput(msgspec.Struct, kw_only=True, tag="function_call", tag_field="type"):
    """A function call replayed as history (when not using ``previous_response_id``)."""

    call_id: str
    name: str
    arguments: str


InputItem = InputMessage | FunctionCallOutput | FunctionCallInput


class FunctionTool(
    msgspec.Struct, kw_only=True, omit_defaults=True, tag="function", tag_field="type"
):
    """A client-executed function tool (flat form)."""

    name: str
    description: str | None = None
    parameters: dict[str, Any] = msgspec.field(
        default_factory=lambda: {"type": "object", "properties": {}}
    )
    strict: bool | None = None


class McpTool(msgspec.Struct, kw_only=True, omit_defaults=True, tag="mcp", tag_field="type"):
    """A remote MCP server LM Studio calls itself (needs "Allow remote MCPs")."""

    server_label: str
    server_url: str
    allowed_tools: list[str] | None = None
    headers: dict[str, str] | None = None


ResponsesTool = FunctionTool | McpTool


class ReasoningParams(msgspec.Struct, kw_only=True, omit_defaults=True):
    """Reasoning effort for models that support it (``low``, ``medium``, ``high``)."""

    effort: str | None = None


class ResponsesRequest(msgspec.Struct, kw_only=True, omit_defaults=True):
    """``POST /v1/responses``.

    Continue a conversation with ``previous_response_id`` (the server keeps
    the history) and answer function calls with :class:`FunctionCallOutput`
    items. ``ttl`` applies only if this request JIT-loads the model.
    """

    input: str | list[InputItem]
    model: str = ""
    instructions: str | None = None
    previous_response_id: str | None = None
    tools: list[ResponsesTool] | None = None
    tool_choice: str | dict[str, Any] | None = None
    reasoning: ReasoningParams | None = None
    max_output_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    store: bool | None = None
    stream: bool = False
    ttl: int | None = None


# -- response --


class OutputContent(msgspec.Struct, kw_only=True):
    """A content part of an output item (``output_text``, ``reasoning_text`` ...)."""

    type: str = ""
    text: str = ""


class OutputItem(msgspec.Struct, kw_only=True):
    """One output item: ``message``, ``reasoning``, ``function_call`` or another type."""

    type: str
    id: str | None = None
    status: str | None = None
    role: str | None = None
    content: list[OutputContent] = msgspec.field(default_factory=list)
    summary: list[OutputContent] = msgspec.field(default_factory=list)
    call_id: str | None = None
    name: str | None = None
    arguments: str | dict[str, Any] | None = None

    @property
    def text(self) -> str:
        """The item's text (its content parts, else its summary)."""
        return "".join(p.text for p in self.content or self.summary)

    def arguments_dict(self) -> dict[str, Any]:
        """A function call's arguments as a dict.

        Raises:
            ValueError: the arguments are not a JSON object.
        """
        if isinstance(self.arguments, dict):
            return self.arguments
        raw = self.arguments or "{}"
        try:
            value = msgspec.json.decode(raw)
        except msgspec.DecodeError as exc:
            raise ValueError(f"function call arguments are not JSON: {raw[:200]!r}") from exc
        if not isinstance(value, dict):
            raise ValueError(f"function call arguments are not a JSON object: {raw[:200]!r}")
        return value


class ResponseUsage(msgspec.Struct, kw_only=True):
    """Token counts of a response."""

    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0
    output_tokens_details: dict[str, Any] | None = None


class ModelResponse(msgspec.Struct, kw_only=True):
    """A ``/v1/responses`` result; ``id`` (``resp_...``) continues the conversation."""

    id: str
    object: str = "response"
    created_at: int = 0
    status: str | None = None
    model: str = ""
    output: list[OutputItem] = msgspec.field(default_factory=list)
    usage: ResponseUsage | None = None
    previous_response_id: str | None = None

    @property
    def output_text(self) -> str:
        """The assistant's text across ``message`` items."""
        return "".join(i.text for i in self.output if i.type == "message")

    @property
    def reasoning_text(self) -> str | None:
        """The reasoning across ``reasoning`` items, or ``None`` when there is none."""
        parts = [i.text for i in self.output if i.type == "reasoning"]
        return "".join(parts) if parts else None

    @property
    def function_calls(self) -> list[OutputItem]:
        """The ``function_call`` items, in order."""
        return [i for i in self.output if i.type == "function_call"]


class ResponseStreamEvent(msgspec.Struct, kw_only=True):
    """One streamed event (``response.created``, ``response.output_text.delta`` ...).

    ``response.completed`` carries the whole :class:`ModelResponse`.
    """

    type: str
    delta: str | None = None
    response: ModelResponse | None = None
    item: OutputItem | None = None
    output_index: int | None = None
    item_id: str | None = None
    sequence_number: int | None = None
