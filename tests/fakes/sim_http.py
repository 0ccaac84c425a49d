"""A minimal hand-written ASGI layer: requests in, whole or streamed answers out.

Hypercorn (on trio) serves it; the simulator's routes only see
:class:`Request` and return :class:`Answer` or :class:`StreamAnswer`.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, Awaitable, Callable
from contextlib import aclosing
from typing import Any

import msgspec

from .sim_state import SimError

__all__ = ["Answer", "Request", "StreamAnswer", "asgi_app", "json_answer"]

MAX_REQUEST_BYTES = 64 * 1024 * 1024


class Request(msgspec.Struct, kw_only=True):
    """One HTTP request."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        """The decoded body, or ``None`` when it is empty or not JSON."""
        try:
            return json.loads(self.body) if self.body.strip() else None
        except ValueError:
            return None

    def json_object(self) -> dict[str, Any]:
        """The body as a JSON object, or the 400 LM Studio gives for anything else."""
        try:
            value = json.loads(self.body or b"null")
        except ValueError as exc:
            raise SimError(f"Unexpected token in JSON: {exc}") from exc
        if not isinstance(value, dict):
            raise SimError("Cannot read properties of null (reading 'type')")
        return value


class Answer(msgspec.Struct, kw_only=True):
    """A whole answer."""

    status: int
    body: bytes
    content_type: str = "application/json; charset=utf-8"


class StreamAnswer:
    """A streamed answer: headers at once, then each frame the iterator yields."""

    def __init__(
        self,
        frames: AsyncGenerator[bytes, None],
        status: int = 200,
        content_type: str = "text/event-stream",
    ) -> None:
        self.frames = frames
        self.status = status
        self.content_type = content_type


def json_answer(body: Any, status: int = 200) -> Answer:
    """A JSON answer."""
    return Answer(status=status, body=json.dumps(body).encode())


Handler = Callable[[Request], Awaitable[Answer | StreamAnswer]]


def asgi_app(handler: Handler) -> Callable[..., Awaitable[None]]:
    """Wrap ``handler`` as an ASGI 3 application (HTTP and lifespan)."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > MAX_REQUEST_BYTES or not message.get("more_body"):
                break
        request = Request(
            method=scope["method"],
            path=scope["path"],
            headers={k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]},
            body=b"".join(chunks),
        )
        answer = await handler(request)
        headers = [(b"content-type", answer.content_type.encode())]
        if isinstance(answer, StreamAnswer):
            headers.append((b"cache-control", b"no-cache"))
        else:
            headers.append((b"content-length", str(len(answer.body)).encode()))
        await send({"type": "http.response.start", "status": answer.status, "headers": headers})
        if isinstance(answer, Answer):
            await send({"type": "http.response.body", "body": answer.body})
            return
        # aclosing: a client that hangs up mid-stream must not leave the generator to the GC.
        async with aclosing(answer.frames) as frames:
            async for frame in frames:
                await send({"type": "http.response.body", "body": frame, "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    return app
