"""The request each inference tool makes, as a call for :func:`run_inference`.

Each factory binds a validated request and returns ``call(client, target)``,
which names the leased instance and carries the model's TTL: the TTL matters
only if the server reloads the model just in time for this request, and then
it still unloads by itself.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Protocol, TypeVar

import msgspec

from orchestrator import InferenceTarget
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
_Req = TypeVar("_Req", contravariant=True)
_Out = TypeVar("_Out", covariant=True)
Call = Callable[[InferenceClient, InferenceTarget], Awaitable[T]]


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


def _bind(send: _Send[R, T], request: R) -> Call[T]:
    async def call(client: InferenceClient, t: InferenceTarget) -> T:
        req = msgspec.structs.replace(request, ttl=t.ttl)
        return await send(
            client, base_url=t.base_url, headers=t.headers, model=t.identifier, request=req
        )

    return call


def chat_call(request: ChatRequest) -> Call[ChatCompletion]:
    """``POST /v1/chat/completions`` with ``request``."""
    return _bind(InferenceClient.chat, request)


def complete_call(request: CompletionRequest) -> Call[Completion]:
    """``POST /v1/completions`` with ``request``."""
    return _bind(InferenceClient.complete, request)


def respond_call(request: ResponsesRequest) -> Call[ModelResponse]:
    """``POST /v1/responses`` with ``request``."""
    return _bind(InferenceClient.respond, request)


def embed_call(request: EmbeddingRequest) -> Call[EmbeddingResponse]:
    """``POST /v1/embeddings`` with ``request``."""
    return _bind(InferenceClient.embed, request)
