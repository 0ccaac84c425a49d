"""Case 2, hot path: ``lease`` on a READY model with the fake backend, one task, one core.

Each iteration enters and leaves ``orch.lease(model)``: validation, one
``EnsureLoaded`` through the mailbox and its reply, then a ``Release`` posted
on exit. The actor processes the release while the next lease is submitted,
so leases/s counts both messages. Leases per CPU-second divides by this
process's CPU time instead of wall time: on a shared machine it shows what one
core would do without the time other processes took from it.
"""

from __future__ import annotations

import time

from benchmarks.core import Case, Metric, at_least, at_most, percentile
from orchestrator import Config, open_orchestrator
from orchestrator.testing import FakeBackend

MODEL = "bench/hot"


async def run(quick: bool) -> dict[str, float]:
    count = 2_000 if quick else 20_000
    backend = FakeBackend([MODEL])
    async with open_orchestrator(backend, Config()) as orch:
        await orch.ensure_loaded(MODEL)
        for _ in range(count // 10):  # warm up caches and the allocator
            async with orch.lease(MODEL):
                pass
        latencies: list[int] = []
        clock = time.perf_counter_ns
        cpu_started = time.process_time()
        started = clock()
        for _ in range(count):
            t0 = clock()
            async with orch.lease(MODEL):
                pass
            latencies.append(clock() - t0)
        elapsed_s = (clock() - started) / 1e9
        cpu_s = time.process_time() - cpu_started
    latencies.sort()
    return {
        "p50_us": percentile(latencies, 50) / 1e3,
        "p99_us": percentile(latencies, 99) / 1e3,
        "leases_per_s": count / elapsed_s,
        "leases_per_cpu_s": count / cpu_s,
    }


CASE = Case(
    name="hot_path",
    title="lease on a READY model (FakeBackend), sequential, one core",
    metrics=(
        Metric("p50_us", "lease latency p50", "us", at_most(100)),
        Metric("p99_us", "lease latency p99", "us", at_most(1000)),
        Metric("leases_per_s", "leases per second", "1/s", at_least(10_000)),
        Metric("leases_per_cpu_s", "leases per CPU-second of this process", "1/s"),
    ),
    run=run,
    runs=(5, 1),
    notes="Latency of entering and leaving `orch.lease()` on a READY model; 20,000 leases per run.",
)
