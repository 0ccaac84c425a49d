"""Case 10, memory: a real ``lmsorch serve`` with 3 models loaded, orchestrator and workers apart.

The embedded backend, with the demo model (SmolLM2-135M, Q4_1, ``lmsorch models
fetch-demo``) offered under three names: a fresh models directory holds three
symbolic links to the one GGUF file (``bench-a.gguf`` ...), which the catalogue
lists as three models (its keys come from the path, never the contents). The
server runs as ``lmsorch serve --backend llamacpp`` and is driven over
stdio: ``initialize``, then ``load_model`` for the three names at once
(``max_loaded_models`` is 3 by default), so three llama.cpp workers run, each its own child process.

Memory comes from ``/proc/PID/smaps_rollup``: RSS (resident pages, shared ones
counted in every process that maps them) and PSS (each shared page divided
among the processes sharing it, so PSS sums to the real total). The three
workers map the same file, so their RSS sum counts the weights three times and
their PSS sum once. Target, the plan's "< 500 MB for 3 models": the orchestrator
process alone, and the whole (orchestrator plus workers, PSS). With a 135M model
the workers' part is small; a real model adds its weights and KV cache, which
belong to llama.cpp, not to the orchestrator.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import trio

from benchmarks.case_real_model import MODEL, _models_dir
from benchmarks.core import Case, Metric, Skipped, at_most
from orchestrator.backends.llamacpp_catalog import model_key
from tests.reliability.server_process import LMSORCH, lmsorch_serve, server_env

NAMES = ("bench-a", "bench-b", "bench-c")
_MB = 1024 * 1024


def _smaps(pid: int) -> tuple[float, float]:
    """``(RSS, PSS)`` of ``pid`` in MB, from ``/proc/PID/smaps_rollup``."""
    fields = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        name, value, *_ = line.split()
        fields[name.rstrip(":")] = int(value) * 1024 / _MB
    return fields["Rss"], fields["Pss"]


def _children(pid: int) -> list[int]:
    """Direct child processes of ``pid`` (the workers)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue  # exited while we looked
        # The command name is in parentheses and may hold spaces: the fields follow the last ")".
        if int(text.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def _demo_file() -> Path:
    directory = _models_dir()
    for path in sorted(directory.glob("*.gguf")):
        if model_key(path.name) == MODEL:
            return path
    raise Skipped(f"no {MODEL} GGUF in {directory}")


async def run(quick: bool) -> dict[str, float]:
    demo = _demo_file()
    with tempfile.TemporaryDirectory(prefix="lmsorch-bench-") as tmp:
        models = Path(tmp) / "models"
        models.mkdir()
        for name in NAMES:
            (models / f"{name}.gguf").symlink_to(demo)
        env = server_env(
            Path(tmp), LMSORCH_LLAMACPP_MODELS_DIR=str(models), LMSORCH_LOG_LEVEL="error"
        )
        argv = [LMSORCH, "serve", "--backend", "llamacpp"]
        with trio.fail_after(180):
            async with lmsorch_serve(env, Path(tmp) / "stderr.log", argv) as server:
                pid = server.proc.pid
                await server.reply(await server.send("tools/list"))
                idle_rss, _ = _smaps(pid)
                # All three at once: the workers start side by side.
                calls = [await server.call_tool("load_model", {"model": n}) for n in NAMES]
                for name, ident in zip(NAMES, calls, strict=True):
                    answer = await server.reply(ident)
                    if answer.get("result", {}).get("isError", True):
                        raise RuntimeError(f"load_model {name} failed: {answer}")
                workers = _children(pid)
                if len(workers) != len(NAMES):
                    raise RuntimeError(f"expected {len(NAMES)} workers, found {workers}")
                orch_rss, orch_pss = _smaps(pid)
                worker_mem = [_smaps(w) for w in workers]
                assert server.proc.stdin is not None
                await server.proc.stdin.aclose()  # stdin EOF: the server unloads and exits
    workers_pss = sum(pss for _, pss in worker_mem)
    return {
        "orch_idle_rss_mb": idle_rss,
        "orch_rss_mb": orch_rss,
        "orch_pss_mb": orch_pss,
        "workers_rss_mb": sum(rss for rss, _ in worker_mem),
        "workers_pss_mb": workers_pss,
        "total_pss_mb": orch_pss + workers_pss,
        "model_file_mb": demo.stat().st_size / _MB,
    }


CASE = Case(
    name="memory",
    title="lmsorch serve, 3 models loaded (demo GGUF under 3 names): RSS / PSS from /proc",
    metrics=(
        Metric("orch_idle_rss_mb", "orchestrator RSS, started, no model loaded", "MB"),
        Metric("orch_rss_mb", "orchestrator RSS, 3 models loaded", "MB", at_most(500)),
        Metric("orch_pss_mb", "orchestrator PSS, 3 models loaded", "MB"),
        Metric("workers_rss_mb", "3 workers, RSS summed (shared weights counted 3 times)", "MB"),
        Metric("workers_pss_mb", "3 workers, PSS summed", "MB"),
        Metric("total_pss_mb", "orchestrator + 3 workers, PSS", "MB", at_most(500)),
        Metric("model_file_mb", "the GGUF file (mapped by each worker)", "MB"),
    ),
    run=run,
    runs=(3, 1),
    notes="One fresh server per repetition; memory read once all three models are READY.",
)
