"""Case swap: 3 models, 1 slot, 12 agents asking for random models; ``fifo`` vs ``swap_aware``.

Against the LM Studio simulator (REST loads), with every load taking 1.5 s and
every answer 0.5 s (the simulator's timing switches). Each of 12 agents loops
until the deadline: pick a model (uniform, or skewed 6:3:1), take a lease, send
one chat request, release. Both policies run in the same repetition, one after
the other, on a fresh simulator and orchestrator each, with the same seeds.

Figures per mix (``uniform``, ``skewed``) and policy: completed requests per
minute, swaps (evictions to give the slot to another model), the wait for a
lease p50 / p99 / max (requests still waiting at the deadline count with their
wait so far, so a starved request is not hidden), and the most models the
simulator ever held at once (sampled every 10 ms; must be 1). Ratios:
``swap_aware`` completed over ``fifo`` completed (target >= 2), ``swap_aware``
p99 wait over ``fifo``'s (target <= 1), and ``swap_aware``'s max wait over its
guaranteed bound (target <= 1): the forced-swap bound (``swap_max_wait_s``, here
its derived default: max(5 s, 4 x the measured p50 load time)), plus, for each of the 3 models
that may be served before it, one drain, unload and load (answer + load).

Quick mode scales every time by 0.1 (0.15 s loads, 0.05 s answers, a 0.5 s
bound floor) and runs
the uniform mix for 1.5 s per policy.
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from typing import Literal

import trio

from benchmarks.core import Case, Metric, at_least, at_most, percentile
from orchestrator import Config, Orchestrator, OrchestratorError, open_orchestrator
from orchestrator.inference import ChatMessage, ChatRequest, InferenceClient, InferenceTarget
from tests.fakes import SimModel, Simulator, open_simulator
from tests.fakes.fixtures import make_backend

NAMES = ["bench/swap-a", "bench/swap-b", "bench/swap-c"]
MIXES = {"uniform": [1.0, 1.0, 1.0], "skewed": [6.0, 3.0, 1.0]}
Policy = Literal["fifo", "swap_aware"]
POLICIES: tuple[Policy, ...] = ("fifo", "swap_aware")
AGENTS = 12
LOAD_S = 1.5
ANSWER_S = 0.5
WAIT_FLOOR_S = 5.0  # Config.swap_wait_floor_s's default
REQUEST = ChatRequest(messages=[ChatMessage(role="user", content="hi")], max_tokens=8)


def guaranteed_wait(bound_s: float, scale: float) -> float:
    """The forced-swap bound plus one drain, unload and load per model that may go first."""
    return bound_s + len(NAMES) * (ANSWER_S + LOAD_S) * scale


class _Tally:
    def __init__(self) -> None:
        self.done = 0
        self.errors = 0
        self.waits: list[float] = []
        self.asking: dict[int, float] = {}  # agent -> when its pending request asked


async def _agent(
    orch: Orchestrator,
    client: InferenceClient,
    agent: int,
    weights: Sequence[float],
    tally: _Tally,
) -> None:
    rng = random.Random(agent)
    while True:
        model = rng.choices(NAMES, weights)[0]
        asked = tally.asking[agent] = time.perf_counter()
        try:
            async with orch.lease(model, timeout_s=600) as lease:
                del tally.asking[agent]
                tally.waits.append(time.perf_counter() - asked)
                backend = orch.backend
                target = InferenceTarget(
                    model=model,
                    identifier=lease.identifier,
                    base_url=backend.base_url(lease.identifier),
                    headers=backend.http_headers(),
                )
                await client.chat(target, REQUEST)
                tally.done += 1
        except OrchestratorError:
            tally.errors += 1


async def _watch_loaded(sim: Simulator, most: list[int]) -> None:
    while True:
        most[0] = max(most[0], len(sim.loaded()))
        await trio.sleep(0.01)


async def _one(
    policy: Policy, weights: Sequence[float], scale: float, seconds: float
) -> dict[str, float]:
    config = Config(
        max_loaded_models=1,
        scheduler=policy,
        request_timeout_s=600.0,
        swap_wait_floor_s=WAIT_FLOOR_S * scale,
    )
    tally = _Tally()
    most = [0]
    async with open_simulator([SimModel(key=n) for n in NAMES], jit=False) as sim:
        sim.faults.load_delay_s = LOAD_S * scale
        sim.faults.answer_delay_s = ANSWER_S * scale
        backend = make_backend(sim, load_timeout_s=60.0, allow_untimed_rest_load=True)
        try:
            async with (
                InferenceClient(timeout_s=60.0) as client,
                open_orchestrator(backend, config) as orch,
                trio.open_nursery() as nursery,
            ):
                nursery.start_soon(_watch_loaded, sim, most)
                started = time.perf_counter()
                with trio.move_on_after(seconds):
                    async with trio.open_nursery() as crowd:
                        for agent in range(AGENTS):
                            crowd.start_soon(_agent, orch, client, agent, weights, tally)
                elapsed = time.perf_counter() - started
                swaps = sum(orch.scheduler_status().swaps.values())
                # The largest wait bound in force at the end (derived from the measured loads).
                bound = max(
                    config.swap_wait_floor_s,
                    *(
                        config.swap_wait_load_factor * (orch.metrics.load_p50(n) or 0)
                        for n in NAMES
                    ),
                )
                nursery.cancel_scope.cancel()
        finally:
            await backend.aclose()
    ended = time.perf_counter()
    waits = sorted(tally.waits + [ended - t for t in tally.asking.values()])
    return {
        "per_min": tally.done / elapsed * 60,
        "swaps": float(swaps),
        "wait_p50_s": percentile(waits, 50),
        "wait_p99_s": percentile(waits, 99),
        "wait_max_s": waits[-1],
        "errors": float(tally.errors),
        "most_loaded": float(most[0]),
        "bound_s": bound,
    }


async def run(quick: bool) -> dict[str, float]:
    scale, seconds = (0.1, 1.5) if quick else (1.0, 45.0)
    mixes = ["uniform"] if quick else list(MIXES)
    result: dict[str, float] = {}
    for mix in mixes:
        figures = {p: await _one(p, MIXES[mix], scale, seconds) for p in POLICIES}
        for policy, numbers in figures.items():
            for key, value in numbers.items():
                result[f"{mix}_{policy}_{key}"] = value
        fifo, aware = figures["fifo"], figures["swap_aware"]
        result[f"{mix}_completed_ratio"] = aware["per_min"] / max(fifo["per_min"], 1e-9)
        result[f"{mix}_p99_ratio"] = aware["wait_p99_s"] / max(fifo["wait_p99_s"], 1e-9)
        limit = guaranteed_wait(aware["bound_s"], scale)
        result[f"{mix}_max_wait_over_bound"] = aware["wait_max_s"] / limit
    return result


def _metrics() -> list[Metric]:
    out: list[Metric] = []
    for mix in MIXES:
        out += [
            Metric(
                f"{mix}_completed_ratio", f"{mix}: completed, swap_aware / fifo", "x", at_least(2)
            ),
            Metric(f"{mix}_p99_ratio", f"{mix}: p99 wait, swap_aware / fifo", "x", at_most(1)),
            Metric(
                f"{mix}_max_wait_over_bound",
                f"{mix}: swap_aware max wait / guaranteed bound",
                "x",
                at_most(1),
            ),
        ]
        for policy in POLICIES:
            p = f"{mix}_{policy}"
            out += [
                Metric(f"{p}_per_min", f"{mix} {policy}: completed per minute", "1/min"),
                Metric(f"{p}_swaps", f"{mix} {policy}: swaps", ""),
                Metric(f"{p}_wait_p50_s", f"{mix} {policy}: wait p50", "s"),
                Metric(f"{p}_wait_p99_s", f"{mix} {policy}: wait p99", "s"),
                Metric(f"{p}_wait_max_s", f"{mix} {policy}: wait max", "s"),
                Metric(f"{p}_errors", f"{mix} {policy}: failed requests", "", at_most(0)),
                Metric(f"{p}_most_loaded", f"{mix} {policy}: most loaded at once", "", at_most(1)),
                Metric(f"{p}_bound_s", f"{mix} {policy}: forced-swap wait bound", "s"),
            ]
    return out


CASE = Case(
    name="swap",
    title="3 models, 1 slot, 12 agents: fifo vs swap_aware (1.5 s loads, 0.5 s answers)",
    metrics=_metrics(),
    run=run,
    runs=(1, 1),
)
