"""The endpoints over loopback HTTP: next to /mcp, the side server, status and watch."""

from __future__ import annotations

import argparse
import io
import os
import re
import subprocess
import sys
from functools import partial
from pathlib import Path
from unittest.mock import ANY

import httpx
import pytest
import trio

from mcp_frontend.cli import main
from mcp_frontend.commands.status import show, watch
from mcp_frontend.server import build_server
from mcp_frontend.settings import FrontendSettings
from mcp_frontend.transports.http import serve_http, serve_observability
from mcp_frontend.transports.observability import ObservabilityApp, StatusSource
from mcp_frontend.transports.serve import options_from
from orchestrator import ConfigError, Metrics, open_orchestrator
from orchestrator.testing import FakeBackend

from .support import GatedBackend, get, parse_exposition, serving, value

TOKEN = "obs-s3cret-token"


async def test_the_http_transport_serves_metrics_and_status_behind_its_token() -> None:
    async with open_orchestrator(FakeBackend(["a"])) as orch:
        await orch.ensure_loaded("a")
        server = build_server(orch, settings=FrontendSettings())
        app = ObservabilityApp(StatusSource(orch.metrics, orch))
        async with trio.open_nursery() as nursery:
            run = partial(serve_http, server, port=0, token=TOKEN, observability=app)
            [base] = await nursery.start(run)
            bare = await get(f"{base}/metrics")
            wrong = await get(f"{base}/metrics", token="nope")
            metrics = await get(f"{base}/metrics", token=TOKEN)
            status = await get(f"{base}/status", token=TOKEN)
            with trio.fail_after(10):
                async with httpx.AsyncClient(trust_env=False) as client:
                    auth = {"Authorization": f"Bearer {TOKEN}"}
                    post = await client.post(f"{base}/metrics", headers=auth)
                    head = await client.head(f"{base}/events", headers=auth)
            nursery.cancel_scope.cancel()
    assert (bare.status_code, wrong.status_code) == (401, 401)
    assert metrics.status_code == 200
    samples = parse_exposition(metrics.text)
    assert value(samples, "lmsorch_model_state", model="a", state="READY") == 1
    assert value(samples, "lmsorch_loaded_models") == 1
    assert status.json()["models"][0]["state"] == "READY"
    assert post.status_code == 405
    assert (head.status_code, head.text) == (200, "")
    assert head.headers["content-type"] == "application/x-ndjson"


async def test_status_and_watch_commands_follow_a_running_server() -> None:
    metrics = Metrics()
    source = StatusSource(metrics)  # the server starts before the orchestrator, as in serve

    class Out(io.StringIO):
        def __init__(self) -> None:
            super().__init__()
            self.subscribed = trio.Event()

        def write(self, s: str) -> int:
            if s.startswith("-- watching"):
                self.subscribed.set()
            return super().write(s)

    watched, counted = Out(), Out()
    async with serving(source) as base:
        early = io.StringIO()
        await show(base + "/mcp", early)  # a trailing /mcp is accepted
        assert "no models managed yet" in early.getvalue()
        assert "not running" in early.getvalue()
        with trio.fail_after(30):
            # The nursery outlives the orchestrator: when it stops, the stream ends
            # and watch returns.
            async with (
                trio.open_nursery() as nursery,
                open_orchestrator(FakeBackend(["model-a"]), metrics=metrics) as orch,
            ):
                source.orch = orch
                await orch.ensure_loaded("model-a", ttl_s=120)
                table = io.StringIO()
                await show(base, table)
                nursery.start_soon(partial(watch, base, watched))
                nursery.start_soon(partial(watch, base, counted, count=2))
                await watched.subscribed.wait()
                await counted.subscribed.wait()
                await orch.unload("model-a")
                await orch.ensure_loaded("model-a")
    header, row = table.getvalue().splitlines()
    assert header.split()[:2] == ["MODEL", "STATE"]
    model, state, in_flight, expires_in = row.split()[:4]
    assert (model, state, in_flight) == ("model-a", "READY", "0")
    assert 100 < float(expires_in.removesuffix("s")) <= 120  # a 120 s TTL, counting down
    lines = watched.getvalue().splitlines()
    assert lines[0].split()[:2] == ["MODEL", "STATE"]
    assert lines[1].split()[:2] == ["model-a", "READY"]
    assert lines[2].startswith("-- watching")
    # "HH:MM:SS.mmm model: SRC -> DST (INPUT, 0.001s in SRC)"
    transitions = [line.split(" ", 1)[1] for line in lines[3:-1]]
    assert [t.split(" (")[0] for t in transitions] == [
        "model-a: READY -> EXPIRING",
        "model-a: EXPIRING -> UNLOADED",
        "model-a: UNLOADED -> LOADING",
        "model-a: LOADING -> VERIFYING",
        "model-a: VERIFYING -> READY",
    ]
    assert re.fullmatch(r".*\(UNLOAD_REQUESTED, \d+\.\d{3}s in READY\)", transitions[0])
    assert lines[-1] == "-- the server stopped"
    # --count 2 stops after two transitions, before the server does.
    assert counted.getvalue().splitlines()[3:] == lines[3:5]


async def test_the_status_command_line_exit_codes(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LMSORCH_HTTP_TOKEN", raising=False)
    async with open_orchestrator(FakeBackend(["a"])) as orch:
        await orch.ensure_loaded("a")
        async with serving(orch, token=TOKEN) as base:
            with trio.fail_after(30):
                refused = await trio.to_thread.run_sync(main, ["status", "--url", base])
                denied = capsys.readouterr()
                monkeypatch.setenv("LMSORCH_HTTP_TOKEN", TOKEN)
                shown = await trio.to_thread.run_sync(main, ["status", "--url", base])
                table = capsys.readouterr()
    assert refused == 1
    assert "set LMSORCH_HTTP_TOKEN" in denied.err
    assert TOKEN not in denied.err
    assert shown == 0
    assert table.out.splitlines()[1].split()[:2] == ["a", "READY"]
    with trio.fail_after(30):
        gone = await trio.to_thread.run_sync(main, ["status", "--url", base])
    assert gone == 1
    assert "cannot reach" in capsys.readouterr().err


async def test_scrapes_during_shutdown_are_answered() -> None:
    backend = GatedBackend(["a"])
    metrics = Metrics()
    source = StatusSource(metrics)
    stop = trio.Event()
    loaded = trio.Event()

    async def run_orchestrator() -> None:
        async with open_orchestrator(backend, metrics=metrics) as orch:
            source.orch = orch
            await orch.ensure_loaded("a")
            loaded.set()
            await stop.wait()
        # Here the orchestrator has stopped (its shutdown unloads "a" through the gate).

    async with serving(source) as base:
        with trio.fail_after(30):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(run_orchestrator)
                await loaded.wait()
                stop.set()
                await backend.unload_started.wait()  # shutting down, held in the unload
                during = await get(f"{base}/metrics")
                status = (await get(f"{base}/status")).json()
                events = await get(f"{base}/events")  # the snapshot only, then the end
                backend.unload_gate.set()
            after = await get(f"{base}/metrics")
            status_after = (await get(f"{base}/status")).json()
    assert during.status_code == 200
    samples = parse_exposition(during.text)
    assert value(samples, "lmsorch_model_state", model="a", state="READY") == 1
    assert status == {
        "models": [status["models"][0]],
        "running": False,
        "scheduler": None,
        "backend": ANY,
    }
    assert status["backend"]["up"] is True
    assert status["models"][0]["model"] == "a"
    assert events.status_code == 200
    assert events.text.count("\n") == 1
    assert '"type":"snapshot"' in events.text
    assert after.status_code == 200
    final = parse_exposition(after.text)
    assert value(final, "lmsorch_unloads_total", model="a", reason="shutdown") == 1
    assert value(final, "lmsorch_loaded_models") == 0
    assert status_after == {
        "models": [],
        "running": False,
        "scheduler": None,
        "backend": status["backend"],
    }


def _serve_args(**kw: str | None) -> argparse.Namespace:
    fields: dict[str, str | None] = {
        "backend": None,
        "config": None,
        "http": None,
        "token": None,
        "log_level": None,
        "metrics": None,
    }
    return argparse.Namespace(**(fields | kw))


async def test_the_side_server_binds_loopback_unless_a_token_guards_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("LMSORCH_HTTP_TOKEN", raising=False)
    assert options_from(_serve_args(metrics="9100")).metrics == ("127.0.0.1", 9100)
    with pytest.raises(ConfigError, match=r"refusing to serve on 0\.0\.0\.0 without a token"):
        options_from(_serve_args(metrics="0.0.0.0:9100"))
    with pytest.raises(ConfigError, match="--metrics wants HOST:PORT"):
        options_from(_serve_args(metrics="127.0.0.1:http"))
    assert options_from(_serve_args(metrics="0.0.0.0:9100", token=TOKEN)).metrics == (
        "0.0.0.0",
        9100,
    )
    app = ObservabilityApp(StatusSource(Metrics()))
    with pytest.raises(ConfigError, match="without a token"):
        await serve_observability(app, host="0.0.0.0", port=0, token=None)


def _server_env(tmp_path: Path) -> dict[str, str]:
    """A server subprocess's environment: no inherited settings, no models (llama.cpp)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LMSORCH_", "LMSTUDIO_"))}
    return env | {"HOME": str(tmp_path), "LMSORCH_LLAMACPP_MODELS_DIR": str(tmp_path)}


async def test_lmsorch_serve_stdio_with_a_metrics_side_server(tmp_path: Path) -> None:
    env = _server_env(tmp_path)
    stderr = bytearray()
    found = trio.Event()
    url: list[str] = []

    async def drain(stream: trio.abc.ReceiveStream) -> None:
        async for chunk in stream:
            stderr.extend(chunk)
            match = re.search(rb"metrics at (http://\S+)/metrics", stderr)
            if match and not found.is_set():
                url.append(match.group(1).decode())
                found.set()

    command = [sys.executable, "-m", "mcp_frontend", "--metrics", "127.0.0.1:0"]
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            proc: trio.Process = await nursery.start(
                partial(
                    trio.run_process,
                    command,
                    stdin=subprocess.PIPE,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                    env=env,
                    check=False,
                )
            )
            assert proc.stdin is not None
            assert proc.stderr is not None
            nursery.start_soon(drain, proc.stderr)
            await found.wait()
            metrics = await get(f"{url[0]}/metrics")
            status = (await get(f"{url[0]}/status")).json()
            await proc.stdin.aclose()  # EOF: the server stops
    assert metrics.status_code == 200
    assert "lmsorch_loaded_models 0.0" in metrics.text
    idle = {"policy": "swap_aware", "queues": [], "swaps": {}}
    assert status == {"models": [], "running": True, "scheduler": idle, "backend": ANY}
    assert (status["backend"]["up"], status["backend"]["outages"]) == (True, 0)
    assert proc.returncode == 0, stderr.decode()


async def test_a_taken_metrics_port_is_a_one_line_error(tmp_path: Path) -> None:
    env = _server_env(tmp_path)
    with trio.socket.socket() as taken:
        await taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        command = [sys.executable, "-m", "mcp_frontend", "--metrics", f"127.0.0.1:{port}"]
        with trio.fail_after(60):
            done = await trio.run_process(
                command, stdin=subprocess.DEVNULL, capture_stderr=True, env=env, check=False
            )
    assert done.returncode == 1
    last = done.stderr.decode().strip().splitlines()[-1]
    assert last.startswith("lmsorch serve: error: ")
    assert "in use" in last
    assert b"Traceback" not in done.stderr
