"""Wire Structs of the OpenAI-compatible API as LM Studio speaks it.

Shapes follow ``reference/lmstudio-api.md`` §3. Every Struct is ``kw_only``,
ignores unknown fields (LM Studio adds ``stats``, ``system_fingerprint``,
``model_info`` ...) and gives optional fields a default, so a newer or older
server decodes cleanly. Request Structs use ``omit_defaults`` so only what the
caller set goes on the wire. The ``model`` field of a request is filled in by
:class:`~orchestrator.inference.InferenceClient`, which takes it separately.

Reasoning arrives as ``reasoning_content`` (DeepSeek-style) or ``reasoning``
(gpt-oss); :attr:`ChatMessage.reasoning_text` reads either.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

__all__ = [
    "ChatChoice",
    "ChatCompletion",
    "ChatCompletionChunk",
    "ChatDelta",
    "ChatMessage",
    "ChatRequest",
    "ChunkChoice",
    "Completion",
    "CompletionChoice",
    "CompletionChunk",
    "CompletionRequest",
    "ContentPart",
    "EmbeddingData",
    "EmbeddingRequest",
    "EmbeddingResponse",
    "FunctionCall",
    "FunctionDef",
    "ImagePart",
    "ImageUrl",
    "JsonSchema",
    "ResponseFormat",
    "StreamOptions",
    "TextPart",
    "Tool",
    "ToolCall",
    "ToolCallDelta",
    "Usage",
]

# -- messages and tools --


class TextPart(msgspec.Struct, kw_only=True, tag="text", tag_field="type"):
    """A text part of a multimodal message."""

    text: str


class ImageUrl(msgspec.Struct, kw_only=True, omit_defaults=True):
    """An image, usually a ``data:image/png;base64,...`` URI."""

    url: str
    detail: Literal["auto", "low", "high"] | None = None


class ImagePart(msgspec.Struct, kw_only=True, tag="image_url", tag_field="type"):
    """An image part of a multimodal (vision) message."""

    image_url: ImageUrl


ContentPart = TextPart | ImagePart


class FunctionCall(msgspec.Struct, kw_only=True, omit_defaults=True):
    """The function half of a tool call; ``arguments`` is a JSON string on the wire."""

    name: str | None = None
    arguments: str | None = None


class ToolCall(msgspec.Struct, kw_only=True):
    """A tool call the model made (LM Studio's ids are numeric strings).

    ``type`` is always sent: OpenAI-compatible servers require it when the
    assistant message is replayed as history.
    """

    function: FunctionCall
    id: str | None = None
    type: str = "function"

    def arguments_dict(self) -> dict[str, Any]:
        """Decode the JSON ``arguments`` into a dict.

        Raises:
            ValueError: the model produced arguments that are not a JSON object.
        """
        raw = self.function.arguments or "{}"
        try:
            value = msgspec.json.decode(raw)
        except msgspec.DecodeError as exc:
            raise ValueError(f"tool call arguments are not JSON: {raw[:200]!r}") from exc
        if not isinstance(value, dict):
            raise ValueError(f"tool call arguments are not a JSON object: {raw[:200]!r}")
        return value


class ChatMessage(msgspec.Struct, kw_only=True, omit_defaults=True):
    """One chat message, sent or received.

    An assistant message with tool calls may have no ``content`` at all; a
    ``tool`` message answers the call named by ``tool_call_id``.
    """

    role: str
    content: str | list[ContentPart] | None = None
    name: str | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None
    reasoning_content: str | None = None
    reasoning: str | None = None

    @property
    def reasoning_text(self) -> str | None:
        """The model's reasoning, from ``reasoning_content`` or ``reasoning``."""
        return self.reasoning_content or self.reasoning

    @property
    def text(self) -> str:
        """The text content ("" when there is none, e.g. only tool calls)."""
        if isinstance(self.content, str):
            return self.content
        if self.content is None:
            return ""
        return "".join(p.text for p in self.content if isinstance(p, TextPart))


class FunctionDef(msgspec.Struct, kw_only=True, omit_defaults=True):
    """A function the model may call; ``parameters`` is a JSON Schema."""

    name: str
    description: str | None = None
    parameters: dict[str, Any] = msgspec.field(
        default_factory=lambda: {"type": "object", "properties": {}}
    )
    strict: bool | None = None


class Tool(msgspec.Struct, kw_only=True):
    """A chat-completions tool (the nested ``function`` form)."""

    function: FunctionDef
    type: str = "function"


class JsonSchema(msgspec.Struct, kw_only=True, omit_defaults=True):
    """The schema of a ``json_schema`` response format."""

    name: str
    schema: dict[str, Any]
    strict: bool | None = None


class ResponseFormat(msgspec.Struct, kw_only=True, omit_defaults=True):
    """Structured output. LM Studio accepts only ``json_schema`` and ``text``.

    Example:
        ResponseFormat(type="json_schema", json_schema=JsonSchema(name="n", schema={...}))
    """

    type: Literal["json_schema", "text"]
    json_schema: JsonSchema | None = None


class StreamOptions(msgspec.Struct, kw_only=True):
    """Ask for a usage chunk at the end of a stream (LM Studio 0.3.18+)."""

    include_usage: bool = True


# -- /v1/chat/completions --


class ChatRequest(msgspec.Struct, kw_only=True, omit_defaults=True):
    """``POST /v1/chat/completions``.

    ``ttl`` (seconds) applies only if this request JIT-loads the model; set it
    to the model's TTL so an accidental reload still unloads by itself.
    """

    messages: list[ChatMessage]
    model: str = ""
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    seed: int | None = None
    stop: str | list[str] | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    repeat_penalty: float | None = None
    tools: list[Tool] | None = None
    tool_choice: str | dict[str, Any] | None = None
    response_format: ResponseFormat | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    ttl: int | None = None
    reasoning_effort: str | None = None
    draft_model: str | None = None
    # llama.cpp's server passes these to the chat template (e.g. Qwen3's enable_thinking).
    chat_template_kwargs: dict[str, Any] | None = None


class Usage(msgspec.Struct, kw_only=True):
    """Token counts (LM Studio reports zeros for embeddings)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0


class ChatChoice(msgspec.Struct, kw_only=True):
    """One choice of a chat completion."""

    message: ChatMessage
    index: int = 0
    finish_reason: str | None = None


class ChatCompletion(msgspec.Struct, kw_only=True):
    """A chat completion; ``model`` is the instance identifier that served it."""

    choices: list[ChatChoice]
    id: str = ""
    object: str = "chat.completion"
    created: int = 0
    model: str = ""
    usage: Usage | None = None
    system_fingerprint: str | None = None

    @property
    def message(self) -> ChatMessage:
        """The first choice's message (the client guarantees there is one)."""
        return self.choices[0].message

    @property
    def finish_reason(self) -> str | None:
        """The first choice's finish reason (``stop``, ``length``, ``tool_calls``)."""
        return self.choices[0].finish_reason


class ToolCallDelta(msgspec.Struct, kw_only=True):
    """A fragment of a streamed tool call; fragments share an ``index``."""

    index: int = 0
    id: str | None = None
    type: str | None = None
    function: FunctionCall | None = None


class ChatDelta(msgspec.Struct, kw_only=True):
    """What one stream chunk adds to the message."""

    role: str | None = None
    content: str | None = None
    reasoning_content: str | None = None
    reasoning: str | None = None
    tool_calls: list[ToolCallDelta] | None = None

    @property
    def reasoning_text(self) -> str | None:
        """The reasoning fragment, from ``reasoning_content`` or ``reasoning``."""
        return self.reasoning_content or self.reasoning


class ChunkChoice(msgspec.Struct, kw_only=True):
    """One choice of a stream chunk; the last one has an empty delta and a finish reason."""

    delta: ChatDelta = msgspec.field(default_factory=ChatDelta)
    index: int = 0
    finish_reason: str | None = None


class ChatCompletionChunk(msgspec.Struct, kw_only=True):
    """One ``data:`` frame of a chat completion stream."""

    id: str = ""
    object: str = "chat.completion.chunk"
    created: int = 0
    model: str = ""
    choices: list[ChunkChoice] = msgspec.field(default_factory=list)
    usage: Usage | None = None


# -- /v1/completions --


class CompletionRequest(msgspec.Struct, kw_only=True, omit_defaults=True):
    """``POST /v1/completions`` (no prompt template is applied)."""

    prompt: str | list[str]
    model: str = ""
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    seed: int | None = None
    stop: str | list[str] | None = None
    stream: bool = False
    ttl: int | None = None


class CompletionChoice(msgspec.Struct, kw_only=True):
    """One choice of a text completion."""

    text: str = ""
    index: int = 0
    finish_reason: str | None = None


class Completion(msgspec.Struct, kw_only=True):
    """A text completion."""

    choices: list[CompletionChoice]
    id: str = ""
    object: str = "text_completion"
    created: int = 0
    model: str = ""
    usage: Usage | None = None

    @property
    def text(self) -> str:
        """The first choice's text."""
        return self.choices[0].text


class CompletionChunk(msgspec.Struct, kw_only=True):
    """One ``data:`` frame of a text completion stream."""

    choices: list[CompletionChoice] = msgspec.field(default_factory=list)
    id: str = ""
    model: str = ""
    usage: Usage | None = None


# -- /v1/embeddings --


class EmbeddingRequest(msgspec.Struct, kw_only=True, omit_defaults=True):
    """``POST /v1/embeddings``."""

    input: str | list[str]
    model: str = ""
    ttl: int | None = None


class EmbeddingData(msgspec.Struct, kw_only=True):
    """One embedding vector."""

    embedding: list[float]
    index: int = 0
    object: str = "embedding"


class EmbeddingResponse(msgspec.Struct, kw_only=True):
    """The embeddings, in input order."""

    data: list[EmbeddingData]
    object: str = "list"
    model: str = ""
    usage: Usage | None = None

    @property
    def vectors(self) -> list[list[float]]:
        """The vectors, ordered by ``index``."""
        return [d.embedding for d in sorted(self.data, key=lambda d: d.index)]
