"""Inference tools: chat, raw text completion, stateful responses, embeddings.

Each tool validates everything first (sizes, formats, schemas), resolves the
model (the configured default when omitted), then runs one call through
:func:`~mcp_frontend.inference_call.run_inference`, which holds a lease.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from mcp.server.mcpserver import Context, MCPServer
from mcp.types import ToolAnnotations
from pydantic import Field

from mcp_frontend import chat
from mcp_frontend.deps import Deps
from mcp_frontend.errors import ToolError
from mcp_frontend.inference_call import check_prompt_size, resolve_model, run_inference
from mcp_frontend.schemas import (
    ChatMessageIn,
    ChatOut,
    EmbeddingsOut,
    ResponseFormatIn,
    ResponseOut,
    TextOut,
    response_usage_out,
    usage_out,
)
from orchestrator import chat_call, complete_call, embed_call, respond_call
from orchestrator.inference import (
    ChatMessage,
    ChatRequest,
    CompletionRequest,
    EmbeddingRequest,
    ReasoningParams,
    ResponsesRequest,
)

__all__ = ["INFERENCE", "MaxTokens", "ModelOpt", "Temperature", "register"]

_EFFORT = {"off": "none"}
"""Our reasoning setting -> the Responses API ``reasoning.effort`` LM Studio honours."""

ModelOpt = Annotated[
    str | None, Field(description="Model key; omitted means the configured default model.")
]
Temperature = Annotated[float | None, Field(ge=0, le=2, description="Sampling temperature.")]
MaxTokens = Annotated[int | None, Field(ge=1, le=1_000_000, description="Most tokens to generate.")]
Prompt = Annotated[str, Field(min_length=1)]
ResponseId = Annotated[str | None, Field(pattern=r"^[A-Za-z0-9_-]{1,200}$")]
EmbeddingModel = Annotated[
    str | None,
    Field(description="Embedding model key; omitted means the default embedding model."),
]

# Inference may load a model (a side effect) but changes nothing else; sampling is not idempotent.
INFERENCE = ToolAnnotations(
    read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=False
)


def _messages(
    prompt: str | None, messages: list[ChatMessageIn] | None, system: str | None
) -> list[ChatMessage]:
    if (prompt is None) == (messages is None):
        raise ToolError("give exactly one of 'prompt' or 'messages'")
    if messages is not None and not messages:
        raise ToolError("'messages' is empty")
    head = [ChatMessage(role="system", content=system)] if system else []
    if prompt is not None:
        return [*head, ChatMessage(role="user", content=prompt)]
    return head + [ChatMessage(role=m["role"], content=m["content"]) for m in messages or []]


def _texts(deps: Deps, text: str | list[str]) -> list[str]:
    texts = [text] if isinstance(text, str) else text
    limit = deps.settings.max_embedding_inputs
    if not 1 <= len(texts) <= limit:
        raise ToolError(f"give 1 to {limit} texts, got {len(texts)}")
    if empty := [i for i, t in enumerate(texts) if not t.strip()]:
        raise ToolError(f"text {empty[0]} is empty")
    check_prompt_size(deps, *texts)
    return texts


def register(mcp: MCPServer[Any], deps: Deps) -> None:
    """Register the inference tools on ``mcp``."""

    @mcp.tool(title="Chat completion", annotations=INFERENCE)
    async def chat_completion(
        ctx: Context[Any, Any],
        prompt: str | None = None,
        messages: list[ChatMessageIn] | None = None,
        system_prompt: str | None = None,
        model: ModelOpt = None,
        temperature: Temperature = None,
        max_tokens: MaxTokens = None,
        response_format: ResponseFormatIn | None = None,
        reasoning_effort: Literal["low", "medium", "high"] | None = None,
    ) -> ChatOut:
        """Ask a local model: one prompt or a conversation, with an optional system prompt.

        With response_format {type: json_schema, json_schema: {name, schema}} the answer
        is constrained to the schema (checked first), decoded into 'parsed', and checked
        against it ('schema_errors'). Reasoning comes back apart from the answer. To switch
        reasoning off use create_response (LM Studio ignores "off" on chat completions).
        """
        check_prompt_size(deps, prompt, system_prompt, *(m["content"] for m in messages or []))
        fmt, schema = chat.response_format(response_format, deps.settings)
        request = ChatRequest(
            messages=_messages(prompt, messages, system_prompt),
            temperature=temperature,
            max_tokens=max_tokens,
            response_format=fmt,
            reasoning_effort=reasoning_effort,
        )
        name = await resolve_model(deps, model)
        answer, target = await run_inference(
            deps, name, "chat", chat_call(deps.inference.get(), request), ctx=ctx
        )
        return chat.chat_out(answer, target, schema)

    @mcp.tool(title="Text completion", annotations=INFERENCE)
    async def text_completion(
        ctx: Context[Any, Any],
        prompt: Prompt,
        model: ModelOpt = None,
        temperature: Temperature = None,
        max_tokens: MaxTokens = None,
        stop_sequences: Annotated[list[str] | None, Field(max_length=16)] = None,
    ) -> TextOut:
        """Continue a raw text prompt (no chat template is applied)."""
        check_prompt_size(deps, prompt, *(stop_sequences or []))
        request = CompletionRequest(
            prompt=prompt, temperature=temperature, max_tokens=max_tokens, stop=stop_sequences
        )
        name = await resolve_model(deps, model)
        answer, t = await run_inference(
            deps, name, "completions", complete_call(deps.inference.get(), request), ctx=ctx
        )
        choice = answer.choices[0]
        return TextOut(
            model=t.model,
            identifier=t.identifier,
            text=choice.text,
            finish_reason=choice.finish_reason,
            usage=usage_out(answer.usage),
        )

    @mcp.tool(title="Stateful response", annotations=INFERENCE)
    async def create_response(
        ctx: Context[Any, Any],
        input_text: Prompt,
        previous_response_id: ResponseId = None,
        instructions: str | None = None,
        model: ModelOpt = None,
        reasoning_effort: Literal["off", "low", "medium", "high"] | None = None,
        max_output_tokens: MaxTokens = None,
        temperature: Temperature = None,
    ) -> ResponseOut:
        """Answer through the Responses API, keeping the conversation on the server.

        Pass the returned id as previous_response_id to continue the conversation.
        Reasoning, when the model produces it, is returned apart from output_text;
        reasoning_effort 'off' switches it off where the model allows.
        """
        check_prompt_size(deps, input_text, instructions)
        request = ResponsesRequest(
            input=input_text,
            instructions=instructions,
            previous_response_id=previous_response_id,
            # LM Studio honours effort "none" here, not "off" (BT#988 comment, 2026-08).
            reasoning=ReasoningParams(effort=_EFFORT.get(reasoning_effort, reasoning_effort))
            if reasoning_effort
            else None,
            max_output_tokens=max_output_tokens,
            temperature=temperature,
        )
        name = await resolve_model(deps, model)
        answer, t = await run_inference(
            deps, name, "responses", respond_call(deps.inference.get(), request), ctx=ctx
        )
        return ResponseOut(
            id=answer.id,
            model=t.model,
            identifier=t.identifier,
            output_text=answer.output_text,
            reasoning=answer.reasoning_text,
            status=answer.status,
            previous_response_id=answer.previous_response_id or previous_response_id,
            usage=response_usage_out(answer.usage),
            warning=chat.empty_answer_warning(
                answer.output_text, answer.status == "incomplete", answer.reasoning_text
            ),
        )

    @mcp.tool(title="Embeddings", annotations=INFERENCE)
    async def generate_embeddings(
        ctx: Context[Any, Any], text: str | list[str], model: EmbeddingModel = None
    ) -> EmbeddingsOut:
        """Embed one text or a list of texts; vectors come back in input order."""
        texts = _texts(deps, text)
        request = EmbeddingRequest(input=text if isinstance(text, str) else texts)
        name = await resolve_model(deps, model, embedding=True)
        answer, t = await run_inference(
            deps, name, "embeddings", embed_call(deps.inference.get(), request), ctx=ctx
        )
        vectors = answer.vectors
        return EmbeddingsOut(
            model=t.model,
            identifier=t.identifier,
            dimensions=len(vectors[0]) if vectors else 0,
            embeddings=vectors,
            usage=usage_out(answer.usage),
        )
