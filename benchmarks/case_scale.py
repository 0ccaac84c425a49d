"""Case 4, scale: 10, 100 and 1,000 models, each with an idle actor.

Memory per actor: ``tracemalloc`` traced memory after all N models are READY
and idle, minus before, divided by N (and the part allocated by ``prometheus_client``:
the model's labelled metric children). It counts everything one more model
costs the orchestrator: the actor, its two timer tasks and nursery, its core,
its metric children, and the fake backend's small record of the model.

Mailbox throughput under load: 64 concurrent tasks take leases on random
models across all N actors; the figure is leases per second (each lease is
an ``EnsureLoaded`` plus a ``Release`` through an actor's mailbox).
"""

from __future__ import annotations

import random
import time
import tracemalloc

import trio

from benchmarks.core import Case, Metric, at_most
from orchestrator import Config, open_orchestrator
from orchestrator.testing import FakeBackend

SIZES = (10, 100, 1_000)
WORKERS = 64


async def _scale(models: int, leases: int) -> tuple[float, float, float]:
    names = [f"bench/scale-{i:04d}" for i in range(models)]
    backend = FakeBackend(names)
    config = Config(max_loaded_models=models, adopt_loaded=False)
    async with open_orchestrator(backend, config) as orch:
        await orch.catalog()  # the catalogue is shared, not per actor: keep it out of the figure
        tracemalloc.start()
        try:
            before = tracemalloc.take_snapshot()
            for name in names:
                await orch.ensure_loaded(name)
            backend.calls.clear()  # the fake's call log is not the orchestrator's memory
            after = tracemalloc.take_snapshot()
        finally:
            tracemalloc.stop()
        by_file = after.compare_to(before, "filename")
        total = sum(s.size_diff for s in by_file)
        metrics = sum(
            s.size_diff for s in by_file if "prometheus_client" in s.traceback[0].filename
        )

        rng = random.Random(models)
        remaining = leases

        async def worker() -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                async with orch.lease(rng.choice(names)):
                    await trio.lowlevel.checkpoint()

        started = time.perf_counter()
        async with trio.open_nursery() as nursery:
            for _ in range(WORKERS):
                nursery.start_soon(worker)
        rate = leases / (time.perf_counter() - started)
    return total / models, metrics / models, rate


async def run(quick: bool) -> dict[str, float]:
    result: dict[str, float] = {}
    for models in SIZES[:2] if quick else SIZES:
        per_actor, metrics, rate = await _scale(models, 2_000 if quick else 20_000)
        result[f"kb_per_actor_{models}"] = per_actor / 1024
        result[f"kb_metrics_per_actor_{models}"] = metrics / 1024
        result[f"leases_per_s_{models}"] = rate
    return result


def _metrics() -> tuple[Metric, ...]:
    out = []
    for n in SIZES:
        out.append(
            Metric(f"kb_per_actor_{n}", f"memory per idle actor ({n:,} models)", "KB", at_most(30))
        )
        out.append(
            Metric(f"kb_metrics_per_actor_{n}", f"  of which Prometheus children ({n:,})", "KB")
        )
        out.append(
            Metric(f"leases_per_s_{n}", f"leases/s, {WORKERS} tasks over {n:,} models", "1/s")
        )
    return tuple(out)


CASE = Case(
    name="scale",
    title="10 / 100 / 1,000 models with idle actors: memory per actor, mailbox throughput",
    metrics=_metrics(),
    run=run,
    runs=(3, 1),
)
