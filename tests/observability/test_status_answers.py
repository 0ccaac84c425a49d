"""`lmsorch status` against servers that answer wrongly: one clear error each, never a traceback.

A loopback server that writes canned HTTP answers stands for what may sit at the URL:
another program, a server mid-restart, a feed that ends.
"""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

import pytest
import trio

from mcp_frontend.commands.status import StatusError, show, watch


async def _answer(raw: bytes, stream: trio.SocketStream) -> None:
    await stream.receive_some(65536)  # the request; its content does not matter here
    await stream.send_all(raw)
    await stream.aclose()


@asynccontextmanager
async def canned(
    status: str, body: bytes, content_type: str = "application/json"
) -> AsyncIterator[str]:
    """The URL of a loopback server that answers every request with ``status`` and ``body``."""
    head = (
        f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode()
    async with trio.open_nursery() as nursery:
        [listener] = await nursery.start(
            partial(trio.serve_tcp, partial(_answer, head + body), 0, host="127.0.0.1")
        )
        yield f"http://127.0.0.1:{listener.socket.getsockname()[1]}"
        nursery.cancel_scope.cancel()


async def test_an_answer_that_is_not_ok_names_the_status_and_what_to_check() -> None:
    async with canned("404 Not Found", b"no such page", "text/plain") as url:
        with (
            trio.fail_after(10),
            pytest.raises(StatusError, match="answered HTTP 404; is it an lmsorch"),
        ):
            await show(url, io.StringIO())


async def test_an_answer_that_is_not_json_says_so() -> None:
    async with canned("200 OK", b"<html>hello</html>", "text/html") as url:
        with trio.fail_after(10), pytest.raises(StatusError, match="did not answer JSON"):
            await show(url, io.StringIO())


async def test_a_feed_that_ends_says_the_server_stopped_and_skips_blank_lines() -> None:
    feed = b'{"type": "snapshot", "models": []}\n\n\n'
    out = io.StringIO()
    async with canned("200 OK", feed, "application/x-ndjson") as url:
        with trio.fail_after(10):
            await watch(url, out)
    text = out.getvalue()
    assert "-- watching transitions" in text
    assert text.endswith("-- the server stopped\n")


async def test_a_feed_line_that_is_not_an_event_is_one_clear_error() -> None:
    async with canned("200 OK", b"this is not json\n", "application/x-ndjson") as url:
        with (
            trio.fail_after(10),
            pytest.raises(StatusError, match="sent something that is not an event"),
        ):
            await watch(url, io.StringIO())


async def test_an_unreachable_feed_is_one_clear_error() -> None:
    async with canned("200 OK", b"") as url:
        pass  # the server is gone again: its port refuses connections
    with trio.fail_after(10), pytest.raises(StatusError, match="cannot reach"):
        await watch(url, io.StringIO(), timeout=2)
