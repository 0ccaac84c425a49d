"""What the tools take and return: TypedDicts, so every tool has an input and output schema.

``typing_extensions.TypedDict`` rather than ``typing.TypedDict``: pydantic
(which the MCP SDK uses to derive schemas) requires it on Python < 3.12.
Outputs are built explicitly from the facade's Structs by the ``*_out``
converters, so a field added to a Struct never leaks into a schema unseen.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, NotRequired

from pydantic import WithJsonSchema
from typing_extensions import TypedDict

from orchestrator.inference import ResponseUsage, Usage

__all__ = [
    "ChatMessageIn",
    "ChatOut",
    "EmbeddingsOut",
    "ImageOut",
    "JsonSchemaIn",
    "ResponseFormatIn",
    "ResponseOut",
    "ResponseUsageOut",
    "SchemaCheckOut",
    "TextOut",
    "UsageOut",
    "VisionOut",
    "response_usage_out",
    "usage_out",
]

# Any JSON value, spelled out: an empty schema ({}) is "anything" too, but strict
# clients (the MCP Inspector) warn about an untyped property.
_JSON_VALUE: dict[str, Any] = {
    "type": ["object", "array", "string", "number", "integer", "boolean", "null"]
}

# -- inputs --


class ChatMessageIn(TypedDict):
    """One message of a conversation."""

    role: Literal["system", "user", "assistant"]
    content: str


class JsonSchemaIn(TypedDict):
    """A named JSON schema the answer must follow."""

    name: str
    schema: dict[str, Any]
    strict: NotRequired[bool]


class ResponseFormatIn(TypedDict):
    """Structured output, OpenAI style. LM Studio accepts ``json_schema`` and ``text`` only."""

    type: Literal["json_schema", "text"]
    json_schema: NotRequired[JsonSchemaIn]


# -- lifecycle outputs --


class UsageOut(TypedDict):
    """Token counts."""

    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class ResponseUsageOut(TypedDict):
    """Token counts of a Responses-API call."""

    input_tokens: int
    output_tokens: int
    total_tokens: int


class ChatOut(TypedDict):
    """A chat answer; reasoning is kept apart from the answer."""

    model: str
    identifier: str
    content: str
    reasoning: str | None
    finish_reason: str | None
    usage: UsageOut | None
    parsed: Annotated[Any, WithJsonSchema(_JSON_VALUE)]
    """The answer decoded as JSON, when a ``json_schema`` response format was asked for."""
    schema_errors: list[str]
    """Where the decoded answer breaks the schema (empty when it conforms)."""
    warning: str | None
    """Set when the token limit ran out before any answer (reasoning used it all)."""


class TextOut(TypedDict):
    """A raw text completion."""

    model: str
    identifier: str
    text: str
    finish_reason: str | None
    usage: UsageOut | None


class ResponseOut(TypedDict):
    """A Responses-API answer; ``id`` continues the conversation."""

    id: str
    model: str
    identifier: str
    output_text: str
    reasoning: str | None
    status: str | None
    previous_response_id: str | None
    usage: ResponseUsageOut | None
    warning: str | None
    """Set when the token limit ran out before any answer (reasoning used it all)."""


class EmbeddingsOut(TypedDict):
    """Embedding vectors, in input order."""

    model: str
    identifier: str
    dimensions: int
    embeddings: list[list[float]]
    usage: UsageOut | None


class ImageOut(TypedDict):
    """An image as it was sent (never its bytes)."""

    source: str
    mime_type: str
    size_bytes: int


class VisionOut(TypedDict):
    """What the model saw in the images."""

    model: str
    identifier: str
    mode: str
    content: str
    reasoning: str | None
    finish_reason: str | None
    images: list[ImageOut]
    usage: UsageOut | None


class SchemaCheckOut(TypedDict):
    """Whether a JSON schema is usable as a response format."""

    valid: bool
    errors: list[str]
    warnings: list[str]
    depth: int
    size_bytes: int


# -- converters --


def usage_out(u: Usage | None) -> UsageOut | None:
    """Convert token counts."""
    if u is None:
        return None
    return UsageOut(
        prompt_tokens=u.prompt_tokens,
        completion_tokens=u.completion_tokens,
        total_tokens=u.total_tokens,
    )


def response_usage_out(u: ResponseUsage | None) -> ResponseUsageOut | None:
    """Convert Responses-API token counts."""
    if u is None:
        return None
    return ResponseUsageOut(
        input_tokens=u.input_tokens, output_tokens=u.output_tokens, total_tokens=u.total_tokens
    )
