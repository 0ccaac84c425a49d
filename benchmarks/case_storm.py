"""Case 7, storm: 200 concurrent clients over 10 models, random TTLs and faults, bounded time.

Against the LM Studio simulator (loads through the fake ``lms``, so each load
is a real subprocess). Every client loops until the deadline: pick a model
(skewed: a few are hot, most are cold so they expire and reload), take a
lease with a random TTL (0.2 to 3 s), send one chat request, think 0 to 20 ms.
A request whose model was lost (evicted behind our back) reports it and is
retried once under a fresh lease, as the MCP tools do.

Meanwhile a chaos task injects a fault every 100 to 300 ms: evict a loaded
model behind the orchestrator's back, answer chat with HTTP 500 for 100 ms,
fail a model's loads for 300 ms, or hold a model's loads for 300 ms.

Figures: requests finished and answered, the error rate by kind (exception
class; a kind absent from a run counts as 0 there, so each kind's median is
over every run), loads per model, and the wait for a lease (p50, p99) until it
was granted or failed (every attempt, a failed one included). Everything but
the fake ``lms`` runs in this one process (clients, orchestrator, simulator),
so the CPU per request covers all of them.
"""

from __future__ import annotations

import random
import time
from collections import Counter

import trio

from benchmarks.core import Case, Metric, percentile
from benchmarks.support import fake_lms
from orchestrator import Config, ModelNotLoaded, Orchestrator, OrchestratorError, open_orchestrator
from orchestrator.inference import ChatMessage, ChatRequest, InferenceClient, InferenceTarget
from tests.fakes import SimModel, Simulator, open_simulator
from tests.fakes.fixtures import make_backend

MODELS = 10
CHAT = "/v1/chat/completions"
TTL_RANGE_S = (0.2, 3.0)
ERROR_RATE_OF = "error_rate_"
"""Prefix of the error rate of one kind (exception class): ``error_rate_VerifyFailed``."""
REQUEST = ChatRequest(messages=[ChatMessage(role="user", content="hi")], max_tokens=8)


class _Tally:
    def __init__(self) -> None:
        self.answered = 0
        self.errors: Counter[str] = Counter()
        self.waits: list[float] = []


async def _request(
    orch: Orchestrator, client: InferenceClient, model: str, ttl: float, tally: _Tally
) -> None:
    for attempt in (1, 2):
        asked = time.perf_counter()
        granted: float | None = None
        try:
            async with orch.lease(model, ttl_s=ttl, timeout_s=10.0) as lease:
                granted = time.perf_counter()
                backend = orch.backend
                try:
                    target = InferenceTarget(
                        model=model,
                        identifier=lease.identifier,
                        base_url=backend.base_url(lease.identifier),
                        headers=backend.http_headers(),
                    )
                    await client.chat(target, REQUEST)
                except ModelNotLoaded as exc:
                    lease.lost(f"inference said: {exc}")
                    if attempt == 2:
                        raise
                    continue
                tally.answered += 1
                return
        finally:
            # A lease that failed counts too, with its wait up to the failure: leaving the
            # failures out would hide the longest waits (a failed verification waits out
            # verify_deadline_s).
            tally.waits.append((granted if granted is not None else time.perf_counter()) - asked)


async def _client(
    orch: Orchestrator,
    client: InferenceClient,
    names: list[str],
    weights: list[float],
    deadline: float,
    rng: random.Random,
    tally: _Tally,
) -> None:
    while time.perf_counter() < deadline:
        model = rng.choices(names, weights)[0]
        try:
            await _request(orch, client, model, rng.uniform(*TTL_RANGE_S), tally)
        except OrchestratorError as exc:
            tally.errors[type(exc).__name__] += 1
        await trio.sleep(rng.uniform(0.0, 0.02))


async def _chaos(
    sim: Simulator, names: list[str], rng: random.Random, counts: Counter[str]
) -> None:
    while True:
        await trio.sleep(rng.uniform(0.1, 0.3))
        fault = rng.choice(("evict", "chat_500", "load_error", "slow_load"))
        key = rng.choice(names)
        counts[fault] += 1
        if fault == "evict":
            loaded = sim.loaded()
            if loaded:
                sim.evict(rng.choice(loaded))
        elif fault == "chat_500":
            sim.faults.route_status[CHAT] = 500
            await trio.sleep(0.1)
            sim.faults.route_status.pop(CHAT, None)
        elif fault == "load_error":
            sim.faults.load_errors[key] = "Failed to load model (scripted storm fault)"
            await trio.sleep(0.3)
            sim.faults.load_errors.pop(key, None)
        else:
            gate = sim.faults.hold_load(key)
            await trio.sleep(0.3)
            gate.set()
            sim.faults.load_gates.pop(key, None)


async def run(quick: bool) -> dict[str, float]:
    clients, seconds = (50, 3.0) if quick else (200, 20.0)
    names = [f"bench/storm-{i}" for i in range(MODELS)]
    weights = [1 / (i + 1) for i in range(MODELS)]  # Zipf-like: model 0 is the hottest
    rng = random.Random(7)
    tally = _Tally()
    faults: Counter[str] = Counter()
    config = Config(
        max_loaded_models=MODELS,
        retry_attempts=2,
        retry_initial_s=0.05,
        retry_jitter_s=0.05,
        breaker_cooldown_s=1.0,
        request_timeout_s=10.0,
        verify_deadline_s=5.0,
        catalog_ttl_s=5.0,
    )
    with fake_lms() as lms:
        async with open_simulator([SimModel(key=n) for n in names], jit=False) as sim:
            backend = make_backend(sim, lms_cli=lms, load_timeout_s=10.0, cli_timeout_s=10.0)
            try:
                async with (
                    InferenceClient(timeout_s=10.0) as client,
                    open_orchestrator(backend, config) as orch,
                ):
                    started = time.perf_counter()
                    cpu_started = time.process_time()
                    deadline = started + seconds
                    with trio.fail_after(seconds + 60):
                        async with trio.open_nursery() as nursery:
                            nursery.start_soon(_chaos, sim, names, rng, faults)
                            async with trio.open_nursery() as crowd:
                                for i in range(clients):
                                    crowd.start_soon(
                                        _client,
                                        orch,
                                        client,
                                        names,
                                        weights,
                                        deadline,
                                        random.Random(i),
                                        tally,
                                    )
                            nursery.cancel_scope.cancel()
                            sim.faults.release_all()
                    elapsed = time.perf_counter() - started
                    cpu_s = time.process_time() - cpu_started
            finally:
                await backend.aclose()
            loads = Counter(record.key for record in sim.state.loads)

    finished = tally.answered + sum(tally.errors.values())
    waits = sorted(tally.waits)
    result = {
        "requests": float(finished),
        "answered": float(tally.answered),
        "answered_per_s": tally.answered / elapsed,
        "error_rate": (finished - tally.answered) / finished if finished else 0.0,
        "wait_p50_ms": percentile(waits, 50) * 1e3 if waits else 0.0,
        "wait_p99_ms": percentile(waits, 99) * 1e3 if waits else 0.0,
        "loads_total": float(sum(loads.values())),
        "loads_hottest_model": float(loads[names[0]]),
        "loads_max_per_model": float(max((loads[n] for n in names), default=0)),
        "loads_min_per_model": float(min((loads[n] for n in names), default=0)),
        "faults_injected": float(sum(faults.values())),
        "cpu_ms_per_request": cpu_s / max(finished, 1) * 1e3,
    }
    # Only the kinds that occurred: the case's zero_when_absent makes the others 0 in this run.
    for kind, count in tally.errors.items():
        result[f"{ERROR_RATE_OF}{kind}"] = count / finished
    return result


CASE = Case(
    name="storm",
    title="200 clients over 10 models, random TTLs, faults in the simulator (20 s)",
    metrics=(
        Metric("requests", "requests finished", ""),
        Metric("answered", "requests answered", ""),
        Metric("answered_per_s", "answered per second", "1/s"),
        Metric("error_rate", "error rate (all kinds)", ""),
        Metric("wait_p50_ms", "wait for a lease p50 (granted or failed)", "ms"),
        Metric("wait_p99_ms", "wait for a lease p99 (granted or failed)", "ms"),
        Metric("loads_total", "loads (all models)", ""),
        Metric("loads_hottest_model", "loads of the hottest model", ""),
        Metric("loads_max_per_model", "loads per model, max", ""),
        Metric("loads_min_per_model", "loads per model, min", ""),
        Metric("faults_injected", "faults injected", ""),
        Metric("cpu_ms_per_request", "CPU of this process per request (all in one)", "ms"),
    ),
    run=run,
    runs=(3, 1),
    zero_when_absent=(ERROR_RATE_OF,),
)
