"""The quick start's demo runs green: real model, real orchestrator, real MCP round trip.

Run as its own process, as ``./scripts/demo`` does (it configures logging for
its timeline). It caught the timeline losing the model once the actor bound it
as log context: every transition then crashed the actor.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import trio

LMSORCH = str(Path(sys.executable).parent / "lmsorch")


async def test_the_demo_runs_green() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LMSORCH_", "LMSTUDIO_"))}
    with trio.fail_after(240):
        result = await trio.run_process(
            [LMSORCH, "demo", "--ttl", "1"],
            env=env,
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )
    out = result.stdout.decode()
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    figures = json.loads(out.strip().splitlines()[-1])
    assert figures["loads"] == 1  # five concurrent cold requests, one load
    assert figures["load_requests"] == 5
    assert figures["chat_tokens"] > 0
    assert figures["broken_backend_loads"] == 3  # the breaker stopped the fourth
    assert "READY → EXPIRING" in out  # the idle TTL really unloaded it
