"""The request each inference tool makes, as a call for :func:`run_inference`.

Each factory binds a validated request and returns ``call(client, target)``,
which names the leased instance and carries the model's TTL: the TTL matters
only if the server reloads the model just in time for this request, and then
it still unloads by itself.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

import msgspec

from mcp_frontend.inference_call import Target
from orchestrator.inference import (
    ChatCompletion,
    ChatRequest,
    Completion,
    CompletionRequest,
    EmbeddingRequest,
    EmbeddingResponse,
    InferenceClient,
    ModelResponse,
    ResponsesRequest,
)

__all__ = ["chat_call", "complete_call", "embed_call", "respond_call"]

T = TypeVar("T")
R = TypeVar("R", ChatRequest, CompletionRequest, EmbeddingRequest, ResponsesRequest)
Call = Callable[[InferenceClient, Target], Awaitable[T]]


def _with_ttl(request: R, target: Target) -> R:
    return msgspec.structs.replace(request, ttl=target.ttl)


def chat_call(request: ChatRequest) -> Call[ChatCompletion]:
    """``POST /v1/chat/completions`` with ``request``."""

    async def call(client: InferenceClient, t: Target) -> ChatCompletion:
        req = _with_ttl(request, t)
        return await client.chat(
            base_url=t.base_url, headers=t.headers, model=t.identifier, request=req
        )

    return call


def complete_call(request: CompletionRequest) -> Call[Completion]:
    """``POST /v1/completions`` with ``request``."""

    async def call(client: InferenceClient, t: Target) -> Completion:
        req = _with_ttl(request, t)
        return await client.complete(
            base_url=t.base_url, headers=t.headers, model=t.identifier, request=req
        )

    return call


def respond_call(request: ResponsesRequest) -> Call[ModelResponse]:
    """``POST /v1/responses`` with ``request``."""

    async def call(client: InferenceClient, t: Target) -> ModelResponse:
        req = _with_ttl(request, t)
        return await client.respond(
            base_url=t.base_url, headers=t.headers, model=t.identifier, request=req
        )

    return call


def embed_call(request: EmbeddingRequest) -> Call[EmbeddingResponse]:
    """``POST /v1/embeddings`` with ``request``."""

    async def call(client: InferenceClient, t: Target) -> EmbeddingResponse:
        req = _with_ttl(request, t)
        return await client.embed(
            base_url=t.base_url, headers=t.headers, model=t.identifier, request=req
        )

    return call
