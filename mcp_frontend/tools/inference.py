"""Inference tools: chat, raw text completion, stateful responses, embeddings.

Each tool validates everything first (sizes, formats, schemas), resolves the
model (the configured default when omitted), then sends one request through
:func:`run_inference`, the one way a tool runs inference: the model is held by
:func:`orchestrator.hold_model`, so the core's rules (a lease for the whole
call, one retry under a fresh lease when the backend lost the model, every
attempt counted and every failure logged) hold for all of them, while
:func:`~mcp_frontend.tools.progress.model_progress` reports the model's load and
failures become tool errors.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Annotated, Any, Literal, TypeVar

from mcp.server.mcpserver import Context, MCPServer
from mcp.types import ToolAnnotations
from pydantic import Field

from mcp_frontend.checks.prompt_size import check_prompt_size
from mcp_frontend.deps import Deps
from mcp_frontend.errors import ToolError, tool_errors
from mcp_frontend.tools import chat
from mcp_frontend.tools.io_types import (
    ChatMessageIn,
    ChatOut,
    EmbeddingsOut,
    ResponseFormatIn,
    ResponseOut,
    TextOut,
    response_usage_out,
    usage_out,
)
from mcp_frontend.tools.progress import model_progress
from orchestrator import InferenceCall, InferenceTarget, ModelInfo, hold_model
from orchestrator.inference import (
    ChatMessage,
    ChatRequest,
    CompletionRequest,
    EmbeddingRequest,
    ReasoningParams,
    ResponsesRequest,
)
from orchestrator.response_chains import STATELESS_RESPONSE_BACKENDS

__all__ = [
    "INFERENCE",
    "MaxTokens",
    "ModelOpt",
    "Temperature",
    "register",
    "require_model_fits",
    "resolve_model",
    "run_inference",
]

T = TypeVar("T")

_TEMPLATE_SWITCH_BACKENDS = frozenset({"llamacpp"})
"""Backends whose chat endpoint switches reasoning off through the chat template
(llama.cpp: ``chat_template_kwargs: {"enable_thinking": false}``, ggml-org/llama.cpp#13196)."""

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


async def resolve_model(deps: Deps, model: str | None, *, embedding: bool = False) -> str:
    """Return ``model``, or the configured default when it is None.

    Raises:
        ToolError: no model given and no default configured; lists the candidates.
    """
    if model is not None:
        return model
    field = "default_embedding_model" if embedding else "default_model"
    default: str | None = getattr(deps.orch.config, field)
    if default is not None:
        return default
    with tool_errors():
        catalog = await deps.orch.catalog()
    keys = [m.key for m in catalog if (m.type == "embedding") == embedding] or [
        m.key for m in catalog
    ]
    raise ToolError(
        f"no model given and no {field} configured (set LMSORCH_{field.upper()}); "
        f"available: {', '.join(sorted(keys)) or 'none'}"
    )


async def require_model_fits(
    deps: Deps, model: str, fits: Callable[[ModelInfo], bool], problem: str, wanted: str
) -> None:
    """Refuse, before any load, a model the catalogue knows cannot serve the call.

    Loading a text-only model for images, or a chat model for embeddings, only
    ends in the backend's refusal (llama.cpp: HTTP 500 about a missing mmproj,
    or 501 "does not support embeddings") after a load. A model the catalogue
    does not list is left to the orchestrator, which names the available ones.

    Args:
        deps: the server's dependencies.
        model: the model key (already resolved).
        fits: whether a catalogue entry can serve the call.
        problem: what is wrong with a model that does not fit, e.g. ``"takes no images"``.
        wanted: what the fitting models are called, e.g. ``"vision models"``.

    Raises:
        ToolError: ``model`` does not fit; names the models that do.
    """
    with tool_errors():
        catalog = await deps.orch.catalog()
    info = next((m for m in catalog if m.key == model), None)
    if info is None or fits(info):
        return
    capable = sorted(m.key for m in catalog if fits(m))
    offer = f"{wanted}: {', '.join(capable)}" if capable else f"the backend offers no {wanted}"
    raise ToolError(f"model {model!r} {problem} (type {info.type!r}); {offer}")


def _embeds(info: ModelInfo) -> bool:
    return info.type == "embedding"


async def run_inference(
    deps: Deps,
    model: str,
    endpoint: str,
    call: InferenceCall[T],
    *,
    ctx: Context[Any, Any] | None = None,
) -> tuple[T, InferenceTarget]:
    """Send ``call`` to ``model`` under a lease; retry once on a fresh lease if it was lost.

    Args:
        deps: the server's dependencies.
        model: the model key (already resolved).
        endpoint: metrics label, e.g. ``"chat"``.
        call: sends the request to the target it is given, e.g.
            ``functools.partial(client.chat, request=request)``.
        ctx: the tool's context, for progress while the model loads.

    Returns:
        The call's result and the target that served it.

    Raises:
        ToolError: every orchestrator or backend failure, with an actionable message.
    """
    interval_s = deps.settings.progress_interval_s
    with tool_errors():
        async with (
            model_progress(
                ctx,
                deps.orch,
                model,
                interval_s=interval_s,
                heartbeat_s=deps.settings.progress_heartbeat_s,
            ),
            hold_model(deps.orch, model, endpoint=endpoint) as held,
        ):
            result = await held.send(call)
            return result, held.target


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
        reasoning: Literal["off", "low", "medium", "high"] | None = None,
    ) -> ChatOut:
        """Ask a local model: one prompt or a conversation, with an optional system prompt.

        With response_format {type: json_schema, json_schema: {name, schema}} the answer
        is constrained to the schema (checked first), decoded into 'parsed', and checked
        against it ('schema_errors'). Reasoning comes back apart from the answer.
        reasoning 'off' switches it off where the model allows (on LM Studio the chat goes
        through its Responses endpoint, which honours it); low/medium/high set the effort.
        """
        check_prompt_size(deps, prompt, system_prompt, *(m["content"] for m in messages or []))
        if reasoning is not None and reasoning_effort is not None:
            raise ToolError("give 'reasoning' or 'reasoning_effort', not both")
        fmt, schema = chat.response_format(response_format, deps.settings)
        turns = _messages(prompt, messages, system_prompt)
        name = await resolve_model(deps, model)
        off = reasoning == "off"
        if off and deps.orch.backend.name not in _TEMPLATE_SWITCH_BACKENDS:
            if fmt is not None:
                raise ToolError(
                    "reasoning 'off' goes through LM Studio's Responses endpoint, which takes "
                    "no response_format here: drop one of them"
                )
            off_request = chat.reasoning_off_request(turns, max_tokens, temperature)
            respond = functools.partial(deps.inference.get().respond, request=off_request)
            reply, target = await run_inference(deps, name, "chat", respond, ctx=ctx)
            return chat.responses_chat_out(reply, target)
        request = ChatRequest(
            messages=turns,
            temperature=temperature,
            max_tokens=max_tokens,
            response_format=fmt,
            reasoning_effort=None if off else reasoning or reasoning_effort,
            chat_template_kwargs={"enable_thinking": False} if off else None,
        )
        call = functools.partial(deps.inference.get().chat, request=request)
        answer, target = await run_inference(deps, name, "chat", call, ctx=ctx)
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
        call = functools.partial(deps.inference.get().complete, request=request)
        answer, t = await run_inference(deps, name, "completions", call, ctx=ctx)
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
        # A stateless backend gets the kept history instead of previous_response_id.
        emulated = deps.orch.backend.name in STATELESS_RESPONSE_BACKENDS
        if emulated:
            with tool_errors():
                request = deps.chains.expand(name, request)
        call = functools.partial(deps.inference.get().respond, request=request)
        answer, t = await run_inference(deps, name, "responses", call, ctx=ctx)
        if emulated:
            deps.chains.record(name, request, answer)
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
        await require_model_fits(deps, name, _embeds, "is no embedding model", "embedding models")
        call = functools.partial(deps.inference.get().embed, request=request)
        answer, t = await run_inference(deps, name, "embeddings", call, ctx=ctx)
        vectors = answer.vectors
        return EmbeddingsOut(
            model=t.model,
            identifier=t.identifier,
            dimensions=len(vectors[0]) if vectors else 0,
            embeddings=vectors,
            usage=usage_out(answer.usage),
        )
