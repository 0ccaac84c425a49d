"""Hostile bytes on the real ``lmsorch serve``'s stdin: the server answers what it can and lives.

The client that starts the server owns its stdio, so this is about robustness,
not a trust boundary: a buggy client (or a stray write to the pipe) sending
JSON nested far deeper than any parser accepts, not-JSON, invalid UTF-8, a
multi-megabyte line or a request with a hostile id must not crash the server,
print a traceback, or stop it answering the next well-formed request.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio

from tests.fakes import Simulator, open_simulator
from tests.reliability.server_process import lmsorch_serve, simulator_server_env

QWEN = "qwen/qwen3-4b"
DEEP = b"[" * 100_000 + b"]" * 100_000

HOSTILE_LINES = {
    "nested 100 000 deep": DEEP,
    "a request whose arguments nest 100 000 deep": (
        b'{"jsonrpc": "2.0", "id": 900, "method": "tools/call", "params": '
        b'{"name": "model_status", "arguments": {"model": ' + DEEP + b"}}}"
    ),
    "not JSON": b"this is not json {",
    "invalid UTF-8": b"\xff\xfe\x00\x01{}",
    "a 2 MB string": b'{"jsonrpc": "2.0", "id": 901, "method": "' + b"x" * 2_000_000 + b'"}',
    "an unknown method": b'{"jsonrpc": "2.0", "id": 902, "method": "rm -rf /"}',
    "a non-finite id": b'{"jsonrpc": "2.0", "id": NaN, "method": "tools/list"}',
    "a list as params": b'{"jsonrpc": "2.0", "id": 903, "method": "tools/call", "params": [1]}',
    "an empty line": b"",
}


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with open_simulator(jit=False) as s:
        yield s


async def test_hostile_stdin_lines_leave_the_server_answering(
    sim: Simulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    env = simulator_server_env(sim, monkeypatch, tmp_path, QWEN)
    log = tmp_path / "server.log"
    with trio.fail_after(60):
        async with lmsorch_serve(env, log) as server:
            assert server.proc.stdin is not None
            for line in HOSTILE_LINES.values():
                await server.proc.stdin.send_all(line + b"\n")
            status = await server.reply(await server.call_tool("model_status", {}))
            loaded = await server.reply(await server.call_tool("load_model", {"model": QWEN}))
            await server.proc.stdin.aclose()  # the client goes away: a clean stop
        assert server.proc.returncode == 0
    assert status["result"]["isError"] is False, status
    assert loaded["result"]["isError"] is False, loaded
    # Requests that carried an id and could be parsed that far got an answer, not silence.
    # Well-formed requests for methods that do not exist get a JSON-RPC error, not silence
    # (lines the parser refuses carry no id it could answer: the SDK drops them).
    for ident in (901, 902):
        assert server.replies[ident]["error"]["code"] == -32601
    text = log.read_text(errors="replace")
    assert "Traceback" not in text, text[-3000:]
    assert sim.loaded() == []  # what it loaded, it unloaded on the way out
