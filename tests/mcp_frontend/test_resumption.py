"""SSE resumption: events carry ids, and a dropped stream is replayed from Last-Event-ID."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import httpx
import trio

from mcp_frontend.transports.event_store import RETRY_INTERVAL_MS, BoundedEventStore
from tests.mcp_frontend.mcp_support import Fake

ACCEPT = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


async def open_session(raw: httpx.AsyncClient, url: str) -> dict[str, str]:
    hello = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-11-25",
            "capabilities": {},
            "clientInfo": {"name": "raw", "version": "0"},
        },
    }
    answer = await raw.post(url, json=hello, headers=ACCEPT)
    assert answer.status_code == 200
    headers = ACCEPT | {
        "mcp-session-id": answer.headers["mcp-session-id"],
        "mcp-protocol-version": "2025-11-25",
    }
    done = {"jsonrpc": "2.0", "method": "notifications/initialized"}
    assert (await raw.post(url, json=done, headers=headers)).status_code == 202
    return headers


async def read_sse_until(
    url: str, method: str, headers: dict[str, str], body: bytes, done: Callable[[bytes], bool]
) -> bytes:
    """Send one HTTP/1.1 request on a fresh socket and read until ``done``, then hang up.

    A raw socket, not httpx: hanging up mid-stream is the point, and leaving
    httpx's stream generators unfinished makes trio warn when they are collected.
    """
    parts = urlsplit(url)
    assert parts.hostname is not None
    assert parts.port is not None
    lines = [f"{method} {parts.path} HTTP/1.1", f"Host: {parts.netloc}", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in (headers | {"Content-Length": str(len(body))}).items()]
    request = ("\r\n".join(lines) + "\r\n\r\n").encode() + body
    received = b""
    async with await trio.open_tcp_stream(parts.hostname, parts.port) as sock:
        await sock.send_all(request)
        while not done(received):
            chunk = await sock.receive_some()
            assert chunk, f"connection closed early: {received!r}"
            received += chunk
    return received


async def test_a_dropped_stream_is_resumed_with_the_answer(http_url: str, fake: Fake) -> None:
    gate = fake.backend.script("model-a").gate = trio.Event()
    call = {
        "jsonrpc": "2.0",
        "id": 7,
        "method": "tools/call",
        "params": {"name": "load_model", "arguments": {"model": "model-a"}},
    }
    with trio.fail_after(15):
        async with httpx.AsyncClient(trust_env=False, timeout=10) as raw:
            headers = await open_session(raw, http_url)
        first = await read_sse_until(
            http_url,
            "POST",
            headers,
            json.dumps(call).encode(),
            lambda got: _PRIMED.search(got) is not None,
        )  # the priming event is in: the connection drops here, before the answer
        primed = _PRIMED.search(first)
        assert primed is not None
        event_id, retry = primed["id"].decode(), int(primed["retry"])

        gate.set()
        await fake.orch.ensure_loaded("model-a")  # the call finishes while we are away

        replay = headers | {"Last-Event-ID": event_id}
        resumed = await read_sse_until(
            http_url, "GET", replay, b"", lambda got: b'"id":7' in got and got.endswith(b"\r\n\r\n")
        )

    assert retry == RETRY_INTERVAL_MS
    data = re.search(rb'data: (\{"jsonrpc":"2.0","id":7.*?)\r\n', resumed)
    assert data is not None
    answer = json.loads(data[1])
    assert answer["result"]["structuredContent"]["status"]["state"] == "READY"


_PRIMED = re.compile(rb"id: (?P<id>\S+)\r\n(?:data: ?\r\n)?retry: (?P<retry>\d+)\r\n")


async def test_the_event_store_is_bounded_and_keeps_streams_apart() -> None:
    from mcp.types import JSONRPCNotification

    store = BoundedEventStore(max_events=3)
    note = JSONRPCNotification(jsonrpc="2.0", method="notifications/progress")
    a1 = await store.store_event("a", None)
    a2 = await store.store_event("a", note)
    b1 = await store.store_event("b", note)
    a3 = await store.store_event("a", note)
    got: list[str | None] = []

    async def collect(event: Any) -> None:
        got.append(event.event_id)

    assert store.size == 3
    assert await store.replay_events_after(a1, collect) is None  # dropped: the oldest
    assert await store.replay_events_after(a2, collect) == "a"
    assert got == [a3]  # b's event is not a's
    assert a1.split("-")[0] != b1.split("-")[0]
