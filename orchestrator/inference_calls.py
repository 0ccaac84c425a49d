"""The request each inference endpoint makes, as a call for :meth:`HeldModel.send`.

Each factory binds a client and a validated request and returns
``call(target)``, which names the leased instance and carries the model's TTL:
the TTL matters only if the server reloads the model just in time for this
request, and then it still unloads by itself. The MCP inference tools and the
agent loop both send through these.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Protocol, TypeVar

import msgspec

from orchestrator.held_model import InferenceTarget
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

__all__ = ["InferenceCall", "chat_call", "complete_call", "embed_call", "respond_call"]

T = TypeVar("T")
R = TypeVar("R", ChatRequest, CompletionRequest, EmbeddingRequest, ResponsesRequest)
_Req = TypeVar("_Req", contravariant=True)
_Out = TypeVar("_Out", covariant=True)
InferenceCall = Callable[[InferenceTarget], Awaitable[T]]
"""Sends one request to the instance a :class:`InferenceTarget` names."""


class _Send(Protocol[_Req, _Out]):
    """An :class:`InferenceClient` method, unbound: they all take the same keywords."""

    def __call__(
        self,
        client: InferenceClient,
        /,
        *,
        base_url: str,
        headers: Mapping[str, str],
        model: str,
        request: _Req,
    ) -> Awaitable[_Out]: ...


def _bind(client: InferenceClient, send: _Send[R, T], request: R) -> InferenceCall[T]:
    async def call(t: InferenceTarget) -> T:
        req = msgspec.structs.replace(request, ttl=t.ttl)
        return await send(
            client, base_url=t.base_url, headers=t.headers, model=t.identifier, request=req
        )

    return call


def chat_call(client: InferenceClient, request: ChatRequest) -> InferenceCall[ChatCompletion]:
    """``POST /v1/chat/completions`` with ``request``."""
    return _bind(client, InferenceClient.chat, request)


def complete_call(client: InferenceClient, request: CompletionRequest) -> InferenceCall[Completion]:
    """``POST /v1/completions`` with ``request``."""
    return _bind(client, InferenceClient.complete, request)


def respond_call(
    client: InferenceClient, request: ResponsesRequest
) -> InferenceCall[ModelResponse]:
    """``POST /v1/responses`` with ``request``."""
    return _bind(client, InferenceClient.respond, request)


def embed_call(
    client: InferenceClient, request: EmbeddingRequest
) -> InferenceCall[EmbeddingResponse]:
    """``POST /v1/embeddings`` with ``request``."""
    return _bind(client, InferenceClient.embed, request)
