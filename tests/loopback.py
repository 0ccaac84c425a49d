"""A raw loopback HTTP server for transport-failure tests: it answers exactly as scripted.

Each connection is handed to a handler with the request already read, so a test
can answer, stream part of an answer, or close the connection at any point, and
the server counts how many connections are open at once.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import trio

Handler = Callable[[trio.SocketStream], Awaitable[None]]


@dataclass
class Loopback:
    """A running server: its URL and what it saw."""

    port: int
    open_now: int = 0
    most_open: int = 0
    served: int = 0
    requests: list[bytes] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        """The OpenAI-style base URL of the server."""
        return f"http://127.0.0.1:{self.port}/v1"


async def read_request(stream: trio.SocketStream) -> bytes:
    """Read one HTTP request (headers and a ``Content-Length`` body) and return it."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = await stream.receive_some(65536)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(body) < length:
        chunk = await stream.receive_some(65536)
        if not chunk:
            break
        body += chunk
    return head + b"\r\n\r\n" + body


def json_response(body: bytes) -> bytes:
    """A whole ``200`` JSON answer."""
    return (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )


STREAM_HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n"
    b"Connection: close\r\n\r\n"
)


def chunk(data: bytes) -> bytes:
    """One HTTP/1.1 chunk of a chunked body."""
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


def refused_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@asynccontextmanager
async def loopback(handler: Handler) -> AsyncIterator[Loopback]:
    """Serve ``handler`` on a free loopback port for the block; every connection is counted."""
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    server = Loopback(port=listeners[0].socket.getsockname()[1])

    async def serve(stream: trio.SocketStream) -> None:
        server.open_now += 1
        server.most_open = max(server.most_open, server.open_now)
        try:
            server.requests.append(await read_request(stream))
            with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                await handler(stream)
            server.served += 1
        finally:
            server.open_now -= 1
            await stream.aclose()

    async with trio.open_nursery() as nursery:
        await nursery.start(trio.serve_listeners, serve, listeners)
        yield server
        nursery.cancel_scope.cancel()
