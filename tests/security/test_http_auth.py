"""The HTTP transport: the token guards every path, compared in constant time, never logged.

Also: a non-loopback bind without a token is refused before anything listens,
and nothing answers a websocket.
"""

from __future__ import annotations

import argparse
import io
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import httpx
import pytest
import trio

from mcp_frontend.server import build_server
from mcp_frontend.settings import FrontendSettings
from mcp_frontend.transports.http import BearerTokenGuard, check_exposure, is_loopback, serve_http
from mcp_frontend.transports.observability import ObservabilityApp, StatusSource
from mcp_frontend.transports.serve import options_from
from orchestrator import ConfigError, open_orchestrator
from orchestrator.testing import FakeBackend

from .capture import captured_logs

TOKEN = "http-SECRET-4d2f8b1c9e"
PATHS = ["/mcp", "/metrics", "/status", "/events", "/", "/mcp/../metrics", "/nope"]
BAD_HEADERS: list[dict[str, str]] = [
    {},
    {"Authorization": "Bearer wrong"},
    {"Authorization": f"bearer {TOKEN}"},
    {"Authorization": f"Bearer {TOKEN}x"},
    {"Authorization": f"Bearer {TOKEN[:-1]}"},
    {"Authorization": f"Basic {TOKEN}"},
    {"Authorization": TOKEN},
    {"Authorization": "Bearer"},
    {"X-Token": TOKEN},
    {"Cookie": f"token={TOKEN}"},
]


@pytest.fixture
def logs() -> Iterator[io.StringIO]:
    """The server's logs at debug level (the test's own HTTP client left out)."""
    with captured_logs(ignore=("httpx", "httpcore")) as out:
        yield out


@asynccontextmanager
async def serving(token: str | None) -> AsyncIterator[str]:
    """The HTTP transport with the observability endpoints, on loopback; yields its base URL."""
    async with open_orchestrator(FakeBackend(["model-a"])) as orch:
        server = build_server(orch, settings=FrontendSettings(progress_interval_s=0.01))
        observability = ObservabilityApp(StatusSource(orch.metrics, orch))
        async with trio.open_nursery() as nursery:
            [base] = await nursery.start(
                partial(serve_http, server, port=0, token=token, observability=observability)
            )
            yield base
            nursery.cancel_scope.cancel()


@pytest.fixture
async def base_url() -> AsyncIterator[str]:
    async with serving(TOKEN) as base:
        yield base


@pytest.fixture
async def open_base_url() -> AsyncIterator[str]:
    """Loopback, no token: what ``lmsorch serve --http 127.0.0.1:PORT`` runs."""
    async with serving(None) as base:
        yield base


async def test_every_path_refuses_every_wrong_credential(base_url: str, logs: io.StringIO) -> None:
    statuses: dict[tuple[str, str, str], int] = {}
    with trio.fail_after(20):
        async with httpx.AsyncClient(base_url=base_url, trust_env=False) as http:
            for path in PATHS:
                for headers in BAD_HEADERS:
                    for method in ("GET", "POST"):
                        resp = await http.request(
                            method, path, headers=headers, params={"token": TOKEN}, json={}
                        )
                        statuses[(method, path, str(headers))] = resp.status_code
                        assert TOKEN not in resp.text

    assert set(statuses.values()) == {401}, {k: v for k, v in statuses.items() if v != 401}
    assert len(statuses) == len(PATHS) * len(BAD_HEADERS) * 2
    assert TOKEN not in logs.getvalue()


async def test_the_right_token_opens_the_observability_endpoints(
    base_url: str, logs: io.StringIO
) -> None:
    with trio.fail_after(10):
        async with httpx.AsyncClient(
            base_url=base_url, trust_env=False, headers={"Authorization": f"Bearer {TOKEN}"}
        ) as http:
            metrics = await http.get("/metrics")
            status = await http.get("/status")

    assert (metrics.status_code, status.status_code) == (200, 200)
    assert "lmsorch_" in metrics.text
    assert TOKEN not in logs.getvalue()


@pytest.mark.parametrize(
    "host", ["0.0.0.0", "::", "192.168.1.5", "10.0.0.2", "example.com", "0", ""]
)
def test_a_non_loopback_bind_needs_a_token(host: str) -> None:
    assert not is_loopback(host)
    with pytest.raises(ConfigError, match="without a token"):
        check_exposure(host, None)
    check_exposure(host, TOKEN)


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.5", "::1", "localhost"])
def test_loopback_binds_need_no_token(host: str) -> None:
    assert is_loopback(host)
    check_exposure(host, None)


async def test_serve_http_refuses_before_listening() -> None:
    async with open_orchestrator(FakeBackend(["model-a"])) as orch:
        server = build_server(orch, settings=FrontendSettings())
        with pytest.raises(ConfigError, match=r"refusing to serve on 0\.0\.0\.0 without a token"):
            await serve_http(server, host="0.0.0.0", port=0, token=None)


@pytest.mark.parametrize(
    ("http", "metrics", "token"),
    [("0.0.0.0:8765", None, None), (None, "0.0.0.0:9100", None), ("[::]:8765", None, "")],
)
def test_the_cli_refuses_exposure_without_a_token(
    http: str | None, metrics: str | None, token: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LMSORCH_HTTP_TOKEN", raising=False)
    args = argparse.Namespace(
        backend="lmstudio", config=None, http=http, metrics=metrics, token=token, log_level="info"
    )

    with pytest.raises(ConfigError, match="without a token"):
        options_from(args)


def test_an_empty_token_is_refused() -> None:
    with pytest.raises(ConfigError, match="must not be empty"):
        BearerTokenGuard(_never, "")


async def _never(scope: Any, receive: Any, send: Any) -> None:
    raise AssertionError("the guarded app must not be reached")


async def test_websockets_are_closed_even_with_the_token() -> None:
    sent: list[dict[str, Any]] = []

    async def send(message: Any) -> None:
        sent.append(message)

    async def receive() -> Any:
        return {"type": "websocket.connect"}

    guard = BearerTokenGuard(_never, TOKEN)
    scope = {
        "type": "websocket",
        "path": "/mcp",
        "headers": [(b"authorization", f"Bearer {TOKEN}".encode())],
    }
    await guard(scope, receive, send)

    assert sent == [{"type": "websocket.close", "code": 1008}]


@pytest.mark.parametrize("path", ["/status", "/metrics", "/mcp"])
@pytest.mark.parametrize(
    "host", ["evil.example", "evil.example:80", "127.0.0.1.evil.example", "[::2]"]
)
async def test_a_rebound_host_name_cannot_read_a_loopback_server(
    open_base_url: str, path: str, host: str
) -> None:
    with trio.fail_after(10):
        async with httpx.AsyncClient(base_url=open_base_url, trust_env=False) as http:
            refused = await http.get(path, headers={"Host": host})
            allowed = await http.get("/status")

    assert refused.status_code == 421
    assert allowed.status_code == 200


WIRE = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
BODIES = {
    "deep arrays": b"[" * 100_000 + b"]" * 100_000,
    "deep objects": b'{"a":' * 50_000 + b"1" + b"}" * 50_000,
    "not JSON": b"\x00\xff{{{",
    "NaN params": b'{"jsonrpc":"2.0","id":1,"method":"tools/list","params":NaN}',
    "20 MB": b'{"jsonrpc":"2.0","id":1,"method":"ping","params":{"x":"'
    + b"a" * 20_000_000
    + b'"}}',
    "10 000-call batch": b"["
    + b",".join(b'{"jsonrpc":"2.0","id":1,"method":"ping"}' for _ in range(10_000))
    + b"]",
}


# The server answers 413 before our client has sent the whole 20 MB body; the client's
# abandoned upload generator is finalized by trio, which warns.
@pytest.mark.filterwarnings("ignore:Async generator 'httpx.*garbage collected:ResourceWarning")
async def test_hostile_request_bodies_are_refused_and_the_server_keeps_serving(
    open_base_url: str,
) -> None:
    statuses = {}
    with trio.fail_after(60):
        async with httpx.AsyncClient(base_url=open_base_url, trust_env=False, timeout=30) as http:
            for name, body in BODIES.items():
                statuses[name] = (await http.post("/mcp", content=body, headers=WIRE)).status_code
            hello = {
                "jsonrpc": "2.0",
                "id": 1,
                "method": "initialize",
                "params": {
                    "protocolVersion": "2025-06-18",
                    "capabilities": {},
                    "clientInfo": {"name": "after", "version": "1"},
                },
            }
            after = await http.post("/mcp", json=hello, headers=WIRE)

    assert all(400 <= code < 500 for code in statuses.values()), statuses
    assert statuses["20 MB"] == 413
    assert after.status_code == 200
