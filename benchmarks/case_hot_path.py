"""Case 2, hot path: ``lease`` on a READY model with the fake backend, one task, one core.

Each iteration enters and leaves ``orch.lease(model)``: validation, one
``EnsureLoaded`` through the mailbox and its reply, then a ``Release`` posted
on exit. The actor processes the release while the next lease is submitted,
so leases/s counts both messages. Leases per CPU-second divides by this
process's CPU time instead of wall time: on a shared machine it shows what one
core would do without the time other processes took from it.

The machine-independent figure is a ratio measured in the same run: the lease
p50 over the p50 of a bare trio request/reply round trip (one task sends on a
memory channel, another receives and answers on a second one, the first
receives the answer). Absolute times differ between machines by 2x with the same
code; the ratio does not. A lease is at most two such round trips (the request
and its reply, then the release), so the target is 2.0. The two are timed in
alternating blocks so that machine noise hits both alike.
"""

from __future__ import annotations

import time

import trio

from benchmarks.core import Case, Metric, at_least, at_most, percentile
from orchestrator import Config, open_orchestrator
from orchestrator.testing import FakeBackend

MODEL = "bench/hot"


BLOCK = 1_000
"""Leases, then as many bare round trips, in turn."""


async def _echo(
    requests: trio.MemoryReceiveChannel[int], replies: trio.MemorySendChannel[int]
) -> None:
    async for request in requests:
        await replies.send(request)


async def run(quick: bool) -> dict[str, float]:
    count = 2_000 if quick else 20_000
    backend = FakeBackend([MODEL])
    clock = time.perf_counter_ns
    latencies: list[int] = []
    round_trips: list[int] = []
    elapsed_ns = 0
    cpu_s = 0.0
    send_request, requests = trio.open_memory_channel[int](0)
    send_reply, replies = trio.open_memory_channel[int](0)
    async with open_orchestrator(backend, Config()) as orch, trio.open_nursery() as nursery:
        nursery.start_soon(_echo, requests, send_reply)
        await orch.ensure_loaded(MODEL)
        for i in range(count // 10):  # warm up caches and the allocator
            async with orch.lease(MODEL):
                pass
            await send_request.send(i)
            await replies.receive()
        for _ in range(count // BLOCK):
            cpu_started = time.process_time()
            started = clock()
            for _ in range(BLOCK):
                t0 = clock()
                async with orch.lease(MODEL):
                    pass
                latencies.append(clock() - t0)
            elapsed_ns += clock() - started
            cpu_s += time.process_time() - cpu_started
            for i in range(BLOCK):
                t0 = clock()
                await send_request.send(i)
                await replies.receive()
                round_trips.append(clock() - t0)
        await send_request.aclose()
    latencies.sort()
    round_trips.sort()
    p50_us = percentile(latencies, 50) / 1e3
    round_trip_us = percentile(round_trips, 50) / 1e3
    return {
        "p50_us": p50_us,
        "p99_us": percentile(latencies, 99) / 1e3,
        "leases_per_s": count / (elapsed_ns / 1e9),
        "leases_per_cpu_s": count / cpu_s,
        "round_trip_p50_us": round_trip_us,
        "lease_over_round_trip": p50_us / round_trip_us,
    }


CASE = Case(
    name="hot_path",
    title="lease on a READY model (FakeBackend), sequential, one core",
    metrics=(
        Metric("p50_us", "lease latency p50", "us", at_most(100)),
        Metric("p99_us", "lease latency p99", "us", at_most(1000)),
        Metric("leases_per_s", "leases per second", "1/s", at_least(10_000)),
        Metric("leases_per_cpu_s", "leases per CPU-second of this process", "1/s"),
        Metric("round_trip_p50_us", "bare trio request/reply round trip p50", "us"),
        Metric("lease_over_round_trip", "lease p50 / round trip p50 (same run)", "x", at_most(2.0)),
    ),
    run=run,
    runs=(5, 1),
    notes="Latency of entering and leaving `orch.lease()` on a READY model; 20,000 leases per run.",
)
