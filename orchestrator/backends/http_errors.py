"""One translation of LM Studio's HTTP answers into the orchestrator's errors.

Both the control plane (:mod:`orchestrator.backends.lmstudio`) and the
inference client (:mod:`orchestrator.inference`) call LM Studio over HTTP and
must agree on what every failure means, so the mapping lives here, once:

============================================  =====================================
what LM Studio did                            what we raise
============================================  =====================================
connection refused                            ``NotAnswered`` (a ``BackendUnreachable``)
closed or reset before any answer byte        ``ConnectionDropped`` (a ``NotAnswered``)
closed or reset mid-answer, DNS failure       ``BackendUnreachable`` (transient)
no answer within the deadline                 ``BackendTimeout`` (transient)
HTTP 5xx                                      ``BackendServerError`` (transient)
HTTP 401/403, ``invalid_api_key``             ``BackendAuthError``
"insufficient system resources" (guardrail)   ``BackendRejected``, message kept
context overflow (400, or 200 with ``error``)  ``BackendRejected`` saying what to do
unknown / not-loaded model, "Model unloaded"  ``ModelNotLoaded`` (callers may refine)
"Unexpected endpoint or method", 404 route    ``EndpointNotSupported``
any other 4xx, or **200 with an ``error``**   ``BackendRejected``, message kept
malformed JSON, HTML, wrong types, too big    ``BackendProtocolError`` with an excerpt
============================================  =====================================

LM Studio answers unknown routes (and, in some versions, context overflows)
with HTTP 200 and a top-level ``error`` key, so a 200 is never trusted
without looking for it. Error bodies come as ``{"error": "text"}``,
``{"error": {"message", "type", "param", "code"}}`` or plain text; all three
are understood.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Final, NoReturn, TypeVar, assert_never

import msgspec
import trio

from orchestrator.errors import (
    BackendAuthError,
    BackendError,
    BackendProtocolError,
    BackendRejected,
    BackendServerError,
    BackendSilent,
    BackendTimeout,
    BackendUnreachable,
    ConnectionDropped,
    ModelNotLoaded,
    NotAnswered,
    excerpt,
)

if TYPE_CHECKING:
    import httpx

__all__ = [
    "CONTROL_BODY_LIMIT",
    "EndpointNotSupported",
    "ErrorKind",
    "ServerAnswerError",
    "check_answer",
    "classify",
    "convert",
    "error_for",
    "parse_error_body",
    "raise_protocol",
    "read_bounded",
    "request_json",
    "token_sent",
    "transport_errors",
]

T = TypeVar("T")

CONTROL_BODY_LIMIT: Final = 8 * 1024 * 1024
"""Largest control-plane body we read; a bigger one is a protocol error."""

MESSAGE_LIMIT: Final = 1000
"""LM Studio's own messages (the guardrail one is ~330 chars) are kept up to this."""

_AUTH_HINT: Final = (
    "set LMSTUDIO_API_TOKEN (or LM Studio's LM_API_TOKEN) to a token from LM Studio "
    "(Developer → Server Settings → Require Authentication / Manage Tokens); "
    "a valid token can still lack the permission this operation needs"
)


class EndpointNotSupported(BackendRejected):
    """LM Studio does not offer this route (it is older, or the route is wrong).

    LM Studio answers unknown routes with HTTP 200 and
    ``{"error": "Unexpected endpoint or method. (GET /path)"}``; older servers
    may answer 404. Version detection relies on this error.
    """


class ServerAnswerError(msgspec.Struct, frozen=True, kw_only=True):
    """An error LM Studio reported, in whichever body shape it used.

    Attributes:
        status: the HTTP status (200 when LM Studio said "error" with a 200).
        message: LM Studio's message, bounded.
        code: the structured ``code`` (e.g. ``model_not_found``), when given.
        type: the structured ``type`` (e.g. ``invalid_request_error``), when given.
    """

    status: int
    message: str
    code: str | None = None
    type: str | None = None


class ErrorKind(enum.Enum):
    """What an error answer means, independent of its exact wording."""

    AUTH = "auth"
    SERVER = "server"
    MODEL_NOT_FOUND = "model_not_found"
    NO_MODEL_LOADED = "no_model_loaded"
    MODEL_UNLOADED = "model_unloaded"
    GUARDRAIL = "guardrail"
    CONTEXT_OVERFLOW = "context_overflow"
    UNSUPPORTED_ROUTE = "unsupported_route"
    REJECTED = "rejected"


_MODEL_NOT_FOUND = re.compile(r"invalid model identifier|\bmodel\b[^.\n]{0,300}\bnot found\b")
_MODEL_UNLOADED = re.compile(r"\bmodel (?:is |was |has been )?unloaded\b")
# LM Studio's overflow texts: llama.cpp engine "Trying to keep the first N tokens when
# context the overflows. However, the model is loaded with context length of only M
# tokens ..." (BT#546, BT#237; HTTP 400, or 200 with an error on 0.4.21: BT#2322);
# MLX engine "Context size has been exceeded" (BT#2339).
_CONTEXT_OVERFLOW = re.compile(r"when context the overflows|context size has been exceeded")
_OVERFLOW_HINT: Final = (
    "the prompt does not fit the context the model is loaded with (list_models shows it "
    "per instance): shorten the prompt, or load the model with a longer context"
)


def classify(error: ServerAnswerError) -> ErrorKind:
    """Return what ``error`` means, from its status, code and message."""
    text = error.message.lower()
    codes = {error.code, error.type}
    if error.status in (401, 403) or "invalid_api_key" in codes:
        return ErrorKind.AUTH
    if "insufficient system resources" in text:
        # Checked before 5xx: a guardrail refusal is permanent whatever the status.
        return ErrorKind.GUARDRAIL
    if _CONTEXT_OVERFLOW.search(text):
        return ErrorKind.CONTEXT_OVERFLOW
    if "unexpected endpoint or method" in text:
        return ErrorKind.UNSUPPORTED_ROUTE
    if "model_not_found" in codes or _MODEL_NOT_FOUND.search(text):
        return ErrorKind.MODEL_NOT_FOUND
    if "no models loaded" in text:
        return ErrorKind.NO_MODEL_LOADED
    if _MODEL_UNLOADED.search(text):
        return ErrorKind.MODEL_UNLOADED
    if error.status >= 500:
        return ErrorKind.SERVER
    if error.status == 404:
        return ErrorKind.UNSUPPORTED_ROUTE
    return ErrorKind.REJECTED


def error_for(error: ServerAnswerError, *, what: str, token_sent: bool) -> BackendError:
    """Build the exception for an error answer (callers may refine model errors).

    Args:
        error: what LM Studio answered.
        what: the operation, e.g. ``"LM Studio at http://h:1234: GET /api/v1/models"``.
        token_sent: whether the request carried a bearer token (for the auth hint).
    """
    kind = classify(error)
    said = f"{what}: {error.message}" if error.message else what
    match kind:
        case ErrorKind.AUTH:
            lead = (
                "LM Studio rejected the API token"
                if token_sent
                else "LM Studio requires an API token and none was sent"
            )
            return BackendAuthError(f"{lead}; {_AUTH_HINT} ({said}, HTTP {error.status})")
        case ErrorKind.SERVER:
            return BackendServerError(f"{said} (HTTP {error.status})")
        case ErrorKind.MODEL_NOT_FOUND | ErrorKind.NO_MODEL_LOADED | ErrorKind.MODEL_UNLOADED:
            return ModelNotLoaded(said)
        case ErrorKind.UNSUPPORTED_ROUTE:
            return EndpointNotSupported(f"{said} (this LM Studio version does not offer it)")
        case ErrorKind.CONTEXT_OVERFLOW:
            return BackendRejected(f"{_OVERFLOW_HINT} ({said}, HTTP {error.status})")
        case ErrorKind.GUARDRAIL | ErrorKind.REJECTED:
            return BackendRejected(f"{said} (HTTP {error.status})")
        case _ as unreachable:
            assert_never(unreachable)


_NOT_JSON: Final = object()


def parse_error_body(status: int, body: Any, raw: bytes) -> ServerAnswerError | None:
    """Extract an error from a decoded body, or ``None`` if it reports none.

    Args:
        status: the HTTP status.
        body: the decoded JSON body, or any non-dict (e.g. text that was not JSON).
        raw: the raw body, used as the message when it is not JSON.
    """
    if isinstance(body, dict) and "error" in body and body["error"] is not None:
        err = body["error"]
        if isinstance(err, dict):
            message = err.get("message")
            text = message if isinstance(message, str) else str(err)
            code, kind = err.get("code"), err.get("type")
            return ServerAnswerError(
                status=status,
                message=excerpt(text, MESSAGE_LIMIT),
                code=code if isinstance(code, str) else None,
                type=kind if isinstance(kind, str) else None,
            )
        return ServerAnswerError(status=status, message=excerpt(str(err), MESSAGE_LIMIT))
    if status >= 400:
        text = raw.decode("utf-8", errors="replace") if body is _NOT_JSON else str(body)
        return ServerAnswerError(status=status, message=excerpt(text, MESSAGE_LIMIT))
    return None


def check_answer(status: int, content_type: str, raw: bytes, *, what: str, token_sent: bool) -> Any:
    """Decode a whole answer and raise for any error it carries; return the JSON.

    Raises:
        BackendError: the subclass :func:`error_for` picks, or
            :class:`BackendProtocolError` when a success is not JSON.
    """
    body: Any = _NOT_JSON
    if raw.strip():
        try:
            body = msgspec.json.decode(raw)
        except msgspec.DecodeError:
            body = _NOT_JSON
    error = parse_error_body(status, body, raw)
    if error is not None:
        raise error_for(error, what=what, token_sent=token_sent)
    if body is _NOT_JSON:
        shape = "HTML" if "html" in content_type or raw.lstrip()[:1] == b"<" else "non-JSON"
        raise BackendProtocolError(
            f"{what}: expected JSON, got {shape} (HTTP {status}): {excerpt(raw) or '<empty>'}"
        )
    return body


def convert(obj: Any, type_: type[T], *, what: str) -> T:
    """Convert decoded JSON into a wire Struct; wrong shapes are protocol errors."""
    try:
        return msgspec.convert(obj, type_, strict=False)
    except msgspec.ValidationError as exc:
        raise BackendProtocolError(
            f"{what}: unexpected answer shape ({exc}): {excerpt(msgspec.json.encode(obj))}"
        ) from exc


async def read_bounded(response: httpx.Response, limit: int, *, what: str) -> bytes:
    """Read a streamed response body, refusing to hold more than ``limit`` bytes.

    Raises:
        BackendProtocolError: the body is larger than ``limit``.
    """
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        # Refuse before reading: nothing of the body is buffered or iterated.
        raise BackendProtocolError(
            f"{what}: answer larger than {limit} bytes "
            f"(Content-Length {declared}, HTTP {response.status_code})"
        )
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > limit:
            start = excerpt(b"".join(chunks)[:400] or chunk[:400])
            # The error's traceback keeps this frame alive for as long as anyone holds
            # the error (an idle actor's last message does): drop the buffer first.
            chunks.clear()
            raise BackendProtocolError(
                f"{what}: answer larger than {limit} bytes (HTTP {response.status_code}); "
                f"starts: {start}"
            )
        chunks.append(chunk)
    return b"".join(chunks)


@contextmanager
def transport_errors(what: str, *, before_answer: bool = False) -> Iterator[None]:
    """Translate httpx and trio transport failures into transient backend errors.

    Wrap it around any ``trio.fail_after`` so an overall deadline becomes
    :class:`BackendTimeout` too. A read timeout (connected, the request sent, no
    answer) is :class:`BackendSilent`, which says so and is not retried.

    Args:
        what: names the operation in messages.
        before_answer: the block sends a request and waits for the response to
            begin, so a connection closed in it lost no answer: it raises
            :class:`ConnectionDropped`, which inference may retry on a fresh
            instance. A refused connection is :class:`NotAnswered` everywhere.
    """
    # Here, not at module level: start-up imports this module but sends no request.
    import httpx

    try:
        yield
    except httpx.ReadTimeout as exc:
        raise BackendSilent(
            f"{what}: no answer in time: the server accepted the connection but did not "
            f"answer ({_reason(exc)}); it may be stuck or overloaded: check it, or restart it"
        ) from exc
    except (httpx.TimeoutException, trio.TooSlowError) as exc:
        raise BackendTimeout(f"{what}: no answer in time ({_reason(exc)})") from exc
    except httpx.ConnectError as exc:
        raise NotAnswered(f"{what}: cannot connect ({_reason(exc)})") from exc
    except (httpx.NetworkError, httpx.RemoteProtocolError) as exc:
        if before_answer:
            raise ConnectionDropped(
                f"{what}: the server closed the connection before answering ({_reason(exc)})"
            ) from exc
        raise BackendUnreachable(f"{what}: connection failed ({_reason(exc)})") from exc
    except httpx.DecodingError as exc:
        raise BackendProtocolError(f"{what}: undecodable body ({_reason(exc)})") from exc
    except httpx.HTTPError as exc:
        raise BackendProtocolError(f"{what}: HTTP failure ({_reason(exc)})") from exc


def _reason(exc: BaseException) -> str:
    return excerpt(str(exc) or type(exc).__name__)


async def request_json(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    *,
    what: str,
    headers: Mapping[str, str],
    timeout_s: float,
    body: bytes | None = None,
    limit: int = CONTROL_BODY_LIMIT,
) -> Any:
    """Send one request under an overall deadline and return its checked JSON answer.

    Args:
        client: the pooled client.
        method: ``GET`` or ``POST``.
        url: the full URL.
        what: names the operation in error messages.
        headers: extra headers (e.g. the bearer token).
        timeout_s: overall deadline; also each httpx phase's timeout.
        body: an already JSON-encoded request body.
        limit: largest answer body accepted.

    Raises:
        BackendError: see the module table.
    """
    send_headers = dict(headers)
    if body is not None:
        send_headers["Content-Type"] = "application/json"
    # The overall deadline trails httpx's own per-phase timeouts a little, so a server
    # that never answers is reported as such (ReadTimeout), not as a generic deadline.
    with transport_errors(what), trio.fail_after(timeout_s * 1.1 + 0.1):
        request = client.build_request(
            method, url, content=body, headers=send_headers, timeout=timeout_s
        )
        with transport_errors(what, before_answer=True):
            response = await client.send(request, stream=True)
        try:
            raw = await read_bounded(response, limit, what=what)
        finally:
            await response.aclose()
    return check_answer(
        response.status_code,
        response.headers.get("content-type", ""),
        raw,
        what=what,
        token_sent=token_sent(send_headers),
    )


def token_sent(headers: Mapping[str, str]) -> bool:
    """Whether ``headers`` carry credentials (chooses the wording of auth errors)."""
    return any(k.lower() == "authorization" for k in headers)


def raise_protocol(what: str, detail: str, raw: bytes | str = b"") -> NoReturn:
    """Raise a bounded :class:`BackendProtocolError` for an answer we cannot use."""
    tail = f": {excerpt(raw)}" if raw else ""
    raise BackendProtocolError(f"{what}: {detail}{tail}")
