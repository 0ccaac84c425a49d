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

Full mode then runs both policies for 60 s on the embedded llama.cpp backend
with real models: the demo model (SmolLM2-135M, ``lmsorch models fetch-demo``)
copied under two names (``swap-a``, ``swap-b``), 1 slot, 4 agents, uniform,
answers of up to 8 tokens; a load there is a worker start (well under a second
for this model), so the gain is smaller than with the simulator's 1.5 s loads.

Quick mode scales every time by 0.1 (0.15 s loads, 0.05 s answers, a 0.5 s
bound floor) and runs
the uniform mix for 1.5 s per policy.
"""

from __future__ import annotations

import os
import random
import shutil
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Literal

import trio

from benchmarks.case_real_model import _models_dir
from benchmarks.core import Case, Metric, at_least, at_most, percentile
from orchestrator import Config, Orchestrator, OrchestratorError, hold_model, open_orchestrator
from orchestrator.config import LlamaCppSettings
from orchestrator.inference import ChatMessage, ChatRequest, InferenceClient
from tests.fakes import SimModel, open_simulator
from tests.fakes.fixtures import make_backend

NAMES = ["bench/swap-a", "bench/swap-b", "bench/swap-c"]
MIXES = {"uniform": [1.0, 1.0, 1.0], "skewed": [6.0, 3.0, 1.0]}
Policy = Literal["fifo", "swap_aware"]
POLICIES: tuple[Policy, ...] = ("fifo", "swap_aware")
AGENTS = 12
LOAD_S = 1.5
ANSWER_S = 0.5
WAIT_FLOOR_S = 5.0  # Config.swap_wait_floor_s's default
REAL_NAMES = ["swap-a", "swap-b"]  # the demo model (SmolLM2-135M) copied under two names
REAL_AGENTS = 4
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
    choice: tuple[Sequence[str], Sequence[float]],
    tally: _Tally,
) -> None:
    rng = random.Random(agent)
    while True:
        model = rng.choices(*choice)[0]
        asked = tally.asking[agent] = time.perf_counter()
        try:
            async with hold_model(orch, model, endpoint="chat") as held:
                del tally.asking[agent]
                tally.waits.append(time.perf_counter() - asked)
                await held.send(partial(client.chat, request=REQUEST))
                tally.done += 1
        except OrchestratorError:
            tally.errors += 1


async def _watch_loaded(count: Callable[[], Awaitable[int]], most: list[int]) -> None:
    while True:
        most[0] = max(most[0], await count())
        await trio.sleep(0.01)


async def _drive(
    orch: Orchestrator,
    choice: tuple[Sequence[str], Sequence[float]],
    agents: int,
    seconds: float,
    count_loaded: Callable[[], Awaitable[int]],
) -> dict[str, float]:
    """Run ``agents`` agents for ``seconds``; return the figures of one policy."""
    tally = _Tally()
    most = [0]
    async with InferenceClient(timeout_s=120.0) as client, trio.open_nursery() as nursery:
        nursery.start_soon(_watch_loaded, count_loaded, most)
        started = time.perf_counter()
        with trio.move_on_after(seconds):
            async with trio.open_nursery() as crowd:
                for agent in range(agents):
                    crowd.start_soon(_agent, orch, client, agent, choice, tally)
        elapsed = time.perf_counter() - started
        nursery.cancel_scope.cancel()
    config = orch.config
    # The largest wait bound in force at the end (derived from the measured loads).
    factor = config.swap_wait_load_factor
    loads = orch.metrics.load_p50(choice[0]).values()
    bound = max(config.swap_wait_floor_s, *(factor * p50 for p50 in loads))
    ended = time.perf_counter()
    waits = sorted(tally.waits + [ended - t for t in tally.asking.values()])
    return {
        "per_min": tally.done / elapsed * 60,
        "swaps": float(sum(orch.scheduler_status().swaps.values())),
        "wait_p50_s": percentile(waits, 50),
        "wait_p99_s": percentile(waits, 99),
        "wait_max_s": waits[-1],
        "errors": float(tally.errors),
        "most_loaded": float(most[0]),
        "bound_s": bound,
    }


async def _simulated(
    policy: Policy, weights: Sequence[float], scale: float, seconds: float
) -> dict[str, float]:
    config = Config(
        max_loaded_models=1,
        scheduler=policy,
        request_timeout_s=600.0,
        swap_wait_floor_s=WAIT_FLOOR_S * scale,
    )
    async with open_simulator([SimModel(key=n) for n in NAMES], jit=False) as sim:
        sim.faults.load_delay_s = LOAD_S * scale
        sim.faults.answer_delay_s = ANSWER_S * scale
        backend = make_backend(sim, load_timeout_s=60.0, allow_untimed_rest_load=True)

        async def count_loaded() -> int:
            await trio.lowlevel.checkpoint()
            return len(sim.loaded())

        try:
            async with open_orchestrator(backend, config) as orch:
                return await _drive(orch, (NAMES, weights), AGENTS, seconds, count_loaded)
        finally:
            await backend.aclose()


async def _real(policy: Policy, models_dir: Path, seconds: float) -> dict[str, float]:
    from orchestrator.backends.llamacpp import LlamaCppBackend

    config = Config(max_loaded_models=1, scheduler=policy, adopt_loaded=False)
    # Ports apart from the defaults: other benchmarks or tests may run workers meanwhile.
    settings = LlamaCppSettings(models_dir=str(models_dir), port_min=19300, port_max=19399)
    backend = LlamaCppBackend(settings)

    async def count_loaded() -> int:
        return len(await backend.list_loaded())

    try:
        async with open_orchestrator(backend, config) as orch:
            return await _drive(orch, (REAL_NAMES, [1.0, 1.0]), REAL_AGENTS, seconds, count_loaded)
    finally:
        await backend.aclose()


def _two_copies(directory: Path) -> Path:
    """The demo model under two names (hard links where possible) in a new directory."""
    demo = _models_dir() / "SmolLM2-135M-Instruct.Q4_1.gguf"
    for name in REAL_NAMES:
        target = directory / f"{name}.gguf"
        try:
            os.link(demo, target)
        except OSError:
            shutil.copyfile(demo, target)
    return directory


async def run(quick: bool) -> dict[str, float]:
    scale, seconds = (0.1, 1.5) if quick else (1.0, 45.0)
    mixes = ["uniform"] if quick else list(MIXES)
    result: dict[str, float] = {}
    for mix in mixes:
        figures = {p: await _simulated(p, MIXES[mix], scale, seconds) for p in POLICIES}
        for policy, numbers in figures.items():
            for key, value in numbers.items():
                result[f"{mix}_{policy}_{key}"] = value
        fifo, aware = figures["fifo"], figures["swap_aware"]
        result[f"{mix}_completed_ratio"] = aware["per_min"] / max(fifo["per_min"], 1e-9)
        result[f"{mix}_p99_ratio"] = aware["wait_p99_s"] / max(fifo["wait_p99_s"], 1e-9)
        limit = guaranteed_wait(aware["bound_s"], scale)
        result[f"{mix}_max_wait_over_bound"] = aware["wait_max_s"] / limit
    if not quick:
        with tempfile.TemporaryDirectory(prefix="lmsorch-swap-") as tmp:
            models_dir = _two_copies(Path(tmp))
            for policy in POLICIES:
                for key, value in (await _real(policy, models_dir, 60.0)).items():
                    result[f"real_{policy}_{key}"] = value
        fifo_real, aware_real = result["real_fifo_per_min"], result["real_swap_aware_per_min"]
        result["real_completed_ratio"] = aware_real / max(fifo_real, 1e-9)
    return result


def _policy_metrics(prefix: str, label: str) -> list[Metric]:
    """The figures of one policy's run (``prefix`` names the keys, ``label`` starts the labels)."""
    return [
        Metric(f"{prefix}_per_min", f"{label}: completed per minute", "1/min"),
        Metric(f"{prefix}_swaps", f"{label}: swaps", ""),
        Metric(f"{prefix}_wait_p50_s", f"{label}: wait p50", "s"),
        Metric(f"{prefix}_wait_p99_s", f"{label}: wait p99", "s"),
        Metric(f"{prefix}_wait_max_s", f"{label}: wait max", "s"),
        Metric(f"{prefix}_errors", f"{label}: failed requests", "", at_most(0)),
        Metric(f"{prefix}_most_loaded", f"{label}: most loaded at once", "", at_most(1)),
        Metric(f"{prefix}_bound_s", f"{label}: forced-swap wait bound", "s"),
    ]


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
            out += _policy_metrics(f"{mix}_{policy}", f"{mix} {policy}")
    out.append(Metric("real_completed_ratio", "real model: completed, swap_aware / fifo", "x"))
    for policy in POLICIES:
        out += _policy_metrics(f"real_{policy}", f"real {policy}")
    return out


CASE = Case(
    name="swap",
    title="3 models, 1 slot, 12 agents: fifo vs swap_aware (1.5 s loads, 0.5 s answers)",
    metrics=_metrics(),
    run=run,
    runs=(1, 1),
)
