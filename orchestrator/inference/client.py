"""An OpenAI-compatible inference client on httpx, for LM Studio (and llama.cpp).

The client knows nothing of model lifecycles: every call takes an
:class:`~orchestrator.inference.target.InferenceTarget` naming the server
(``base_url``, ending in ``/v1``), its ``headers``, the instance identifier and
the TTL to send, so the core can hand it the model it holds::

    async with hold_model(orch, model, endpoint="chat") as held:
        answer = await held.send(functools.partial(client.chat, request=request))

Errors are translated by :mod:`orchestrator.backends.http_errors`, the same
mapping the LM Studio backend uses. In particular a "model not found", "No
models loaded" or "Model unloaded" answer raises
:class:`~orchestrator.errors.ModelNotLoaded`, which the core turns into a
``LOST`` input and one retry after a reload.

Streams are async context managers yielding an async iterator, so the HTTP
response is closed when the block ends, even if the caller stops early (an
abandoned async generator would only be closed by the garbage collector)::

    async with client.stream_chat(target, request) as chunks:
        async for chunk in chunks:
            ...
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, Final, TypeVar

import msgspec

from orchestrator.backends.http_errors import (
    check_answer,
    convert,
    error_for,
    parse_error_body,
    raise_protocol,
    read_bounded,
    request_json,
    token_sent,
    transport_errors,
)
from orchestrator.errors import InvalidRequest
from orchestrator.inference.event_stream import DONE as _DONE
from orchestrator.inference.event_stream import EventStream
from orchestrator.inference.responses_types import (
    ModelResponse,
    ResponsesRequest,
    ResponseStreamEvent,
)
from orchestrator.inference.sse import DEFAULT_MAX_EVENT_BYTES, SSEEvent
from orchestrator.inference.target import InferenceTarget
from orchestrator.inference.types import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatRequest,
    Completion,
    CompletionChunk,
    CompletionRequest,
    EmbeddingRequest,
    EmbeddingResponse,
)
from orchestrator.names import validate_model_name

if TYPE_CHECKING:
    import httpx

__all__ = ["DEFAULT_MAX_BODY_BYTES", "EventStream", "InferenceClient"]

T = TypeVar("T")
Q = TypeVar("Q", ChatRequest, CompletionRequest, EmbeddingRequest, ResponsesRequest)

DEFAULT_MAX_BODY_BYTES: Final = 64 * 1024 * 1024
"""Largest non-streamed answer accepted (big embedding batches run to tens of MB)."""


class InferenceClient:
    """Calls the OpenAI-compatible chat, completions, embeddings and responses routes.

    Args:
        http: a pooled client to share (not closed by us); by default one is created.
        timeout_s: deadline of a whole non-streamed call, and the longest a
            stream may stay silent (first token included).
        max_body_bytes: largest non-streamed answer accepted.
        max_event_bytes: largest single stream event accepted.
    """

    def __init__(
        self,
        http: httpx.AsyncClient | None = None,
        *,
        timeout_s: float = 300.0,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
    ) -> None:
        if not timeout_s > 0:
            raise InvalidRequest(f"timeout_s must be positive, got {timeout_s!r}")
        self._owns_http = http is None
        # Ours is created on first use: creating one imports httpcore (and h2/hpack
        # whenever installed, ~0.1 s), which lmsorch serve would pay before tools/list.
        self._http_client: httpx.AsyncClient | None = http
        self._closed = False
        self._timeout_s = timeout_s
        self._max_body = max_body_bytes
        self._max_event = max_event_bytes

    def __repr__(self) -> str:
        return f"InferenceClient(timeout_s={self._timeout_s})"

    async def __aenter__(self) -> InferenceClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the HTTP client if this client created it."""
        self._closed = True
        if self._owns_http and self._http_client is not None:
            await self._http_client.aclose()

    @property
    def _http(self) -> httpx.AsyncClient:
        """The HTTP client: the shared one, or ours, created on first use."""
        if self._http_client is None:
            if self._closed:
                # What httpx says of a closed client; ours was never needed before.
                raise RuntimeError("Cannot send a request, as the client has been closed.")
            import httpx  # on first use: start-up does not pay for httpx and httpcore

            self._http_client = httpx.AsyncClient(trust_env=False)
        return self._http_client

    # -- chat --

    async def chat(self, target: InferenceTarget, request: ChatRequest) -> ChatCompletion:
        """Return one chat completion (tools, ``tool_choice``, ``response_format`` honoured).

        Args:
            target: the instance to ask (every method takes these two arguments); its
                TTL, if any, replaces the request's.
            request: what to ask; its ``model`` and ``stream`` fields are set here.

        Raises:
            ModelNotLoaded: the server does not have the target's instance loaded (or at all).
            BackendError: any other failure; see :mod:`orchestrator.backends.http_errors`.
        """
        _check_chat(request)
        url, what = _address(target, "/chat/completions")
        body = _encode(request, target, stream=False)
        result = await self._post(url, what, target.headers, body, ChatCompletion)
        if not result.choices:
            raise_protocol(what, "the answer has no choices")
        return result

    @asynccontextmanager
    async def stream_chat(
        self, target: InferenceTarget, request: ChatRequest
    ) -> AsyncIterator[EventStream[ChatCompletionChunk]]:
        """Stream a chat completion as :class:`ChatCompletionChunk` objects."""
        _check_chat(request)
        url, what = _address(target, "/chat/completions")
        decode = _chunk_decoder(ChatCompletionChunk, what)
        body = _encode(request, target, stream=True)
        async with self._stream(url, what, target.headers, body, decode) as s:
            yield s

    # -- completions --

    async def complete(self, target: InferenceTarget, request: CompletionRequest) -> Completion:
        """Return one text completion (no prompt template is applied)."""
        url, what = _address(target, "/completions")
        body = _encode(request, target, stream=False)
        result = await self._post(url, what, target.headers, body, Completion)
        if not result.choices:
            raise_protocol(what, "the answer has no choices")
        return result

    @asynccontextmanager
    async def stream_complete(
        self, target: InferenceTarget, request: CompletionRequest
    ) -> AsyncIterator[EventStream[CompletionChunk]]:
        """Stream a text completion as :class:`CompletionChunk` objects."""
        url, what = _address(target, "/completions")
        decode = _chunk_decoder(CompletionChunk, what)
        body = _encode(request, target, stream=True)
        async with self._stream(url, what, target.headers, body, decode) as s:
            yield s

    # -- embeddings --

    async def embed(self, target: InferenceTarget, request: EmbeddingRequest) -> EmbeddingResponse:
        """Return the embeddings of ``request.input``."""
        url, what = _address(target, "/embeddings")
        body = _encode(request, target)
        result = await self._post(url, what, target.headers, body, EmbeddingResponse)
        expected = 1 if isinstance(request.input, str) else len(request.input)
        if len(result.data) != expected:
            raise_protocol(what, f"asked for {expected} embeddings, got {len(result.data)}")
        return result

    # -- responses --

    async def respond(self, target: InferenceTarget, request: ResponsesRequest) -> ModelResponse:
        """Return one Responses-API result (stateful through ``previous_response_id``)."""
        url, what = _address(target, "/responses")
        body = _encode(request, target, stream=False)
        return await self._post(url, what, target.headers, body, ModelResponse)

    @asynccontextmanager
    async def stream_respond(
        self, target: InferenceTarget, request: ResponsesRequest
    ) -> AsyncIterator[EventStream[ResponseStreamEvent]]:
        """Stream a Responses-API result as :class:`ResponseStreamEvent` objects.

        The ``response.completed`` event carries the whole response.
        """
        url, what = _address(target, "/responses")
        decode = _response_event_decoder(what)
        body = _encode(request, target, stream=True)
        async with self._stream(url, what, target.headers, body, decode) as s:
            yield s

    # -- transport --

    async def _post(
        self, url: str, what: str, headers: Mapping[str, str], body: bytes, type_: type[T]
    ) -> T:
        answer = await request_json(
            self._http,
            "POST",
            url,
            what=what,
            headers=headers,
            timeout_s=self._timeout_s,
            body=body,
            limit=self._max_body,
        )
        return convert(answer, type_, what=what)

    @asynccontextmanager
    async def _stream(
        self,
        url: str,
        what: str,
        headers: Mapping[str, str],
        body: bytes,
        decode: Callable[[SSEEvent], Any],
    ) -> AsyncIterator[EventStream[Any]]:
        send = {**headers, "Content-Type": "application/json", "Accept": "text/event-stream"}
        request = self._http.build_request(
            "POST", url, content=body, headers=send, timeout=self._timeout_s
        )
        with transport_errors(what, before_answer=True):
            response = await self._http.send(request, stream=True)
        try:
            kind = response.headers.get("content-type", "")
            if response.status_code != 200 or "text/event-stream" not in kind:
                # An error (or LM Studio's 200-with-error) arrives as one JSON body.
                with transport_errors(what):
                    raw = await read_bounded(response, self._max_body, what=what)
                check_answer(
                    response.status_code, kind, raw, what=what, token_sent=token_sent(send)
                )
                raise_protocol(what, f"expected an event stream, got {kind or 'no type'}", raw)
            events: EventStream[Any] = EventStream(
                response, decode, what=what, max_event_bytes=self._max_event
            )
            try:
                yield events
            finally:
                await events.aclose()
        finally:
            await response.aclose()


def _address(target: InferenceTarget, path: str) -> tuple[str, str]:
    model = validate_model_name(target.identifier)
    url = f"{target.base_url.rstrip('/')}{path}"
    # No server name: the client serves LM Studio and llama.cpp alike.
    return url, f"POST {url} (model {model!r})"


def _encode(request: Q, target: InferenceTarget, **fields: bool) -> bytes:
    """``request`` as sent: naming the target's instance, with its TTL when it has one."""
    ttl = request.ttl if target.ttl is None else target.ttl
    addressed = msgspec.structs.replace(request, model=target.identifier, ttl=ttl, **fields)
    return msgspec.json.encode(addressed)


def _check_chat(request: ChatRequest) -> None:
    if not request.messages:
        raise InvalidRequest("a chat request needs at least one message")
    fmt = request.response_format
    if fmt is None:
        return
    if fmt.type not in ("json_schema", "text"):
        # LM Studio answers 400 to json_object; say so before sending.
        raise InvalidRequest("response_format.type must be 'json_schema' or 'text'")
    if fmt.type == "json_schema" and fmt.json_schema is None:
        raise InvalidRequest("response_format of type 'json_schema' needs json_schema")


def _decode_data(event: SSEEvent, what: str) -> Any:
    try:
        data = msgspec.json.decode(event.data)
    except msgspec.DecodeError:
        raise_protocol(what, "malformed JSON in a stream event", event.data)
    error = parse_error_body(200, data, b"")
    if error is not None:
        raise error_for(error, what=what, token_sent=False)
    return data


def _chunk_decoder(type_: type[T], what: str) -> Callable[[SSEEvent], Any]:
    def decode(event: SSEEvent) -> Any:
        if event.data.strip() == "[DONE]":
            return _DONE
        return convert(_decode_data(event, what), type_, what=what)

    return decode


def _response_event_decoder(what: str) -> Callable[[SSEEvent], Any]:
    def decode(event: SSEEvent) -> Any:
        if event.data.strip() == "[DONE]":
            return _DONE
        data = _decode_data(event, what)
        if not isinstance(data, dict):
            raise_protocol(what, "a stream event is not a JSON object", event.data)
        data.setdefault("type", event.event)
        if data["type"] in ("error", "response.failed"):
            response = data.get("response")
            failure = response.get("error") if isinstance(response, dict) else None
            error = parse_error_body(200, {"error": failure or data}, b"")
            if error is not None:
                raise error_for(error, what=what, token_sent=False)
        return convert(data, ResponseStreamEvent, what=what)

    return decode
