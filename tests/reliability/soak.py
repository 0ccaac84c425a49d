"""The chaos soak: many clients over several models while :class:`~reliability.chaos.Chaos` runs.

Two kinds of clients share one orchestrator over the LM Studio simulator and
the fake ``lms``:

- orchestrator clients call the facade (``ensure_loaded``, a chat request
  through ``hold_model``, the one inference path: a lease, and one retry when
  the model was lost, ``unload``, ``reset_breaker``, ``status``); anything but
  an ``OrchestratorError`` is a violation;
- MCP clients call the tools over an in-memory MCP session; a result must be
  a success or one of our tool errors, never the SDK's bare
  "Error executing tool" (an unexpected exception).

The soak runs in rounds. In each: faults and clients run together; then the
faults stop, the clients finish, every actor must settle (READY, UNLOADED or
BREAKER_OPEN) within a bound, no actor child task may remain, every model must
load again, no ``lms`` run or other child process may be alive, and memory is
measured (no round may exceed the first by more than the tolerance). Invariants
sampled throughout: at most one load in flight per model and every load with a
TTL (the recording backend), and no more models holding room than
``max_loaded_models``. An unraisable exception other than the expected httpx
ones (:data:`~reliability.probes.EXPECTED_UNRAISABLE`) is a violation too.
"""

from __future__ import annotations

import functools
import gc
import random
import time
import tracemalloc
from collections import Counter
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import trio
from mcp import Client
from mcp.types import TextContent

from mcp_frontend.server import build_server
from mcp_frontend.settings import FrontendSettings
from orchestrator import (
    Config,
    Orchestrator,
    OrchestratorError,
    State,
    hold_model,
    open_orchestrator,
)
from orchestrator.inference import ChatMessage, ChatRequest, InferenceClient
from orchestrator.status import Owner
from tests.fakes import Simulator, open_simulator
from tests.fakes.fixtures import make_backend

from .chaos import FOREIGN, Chaos, RecordingBackend
from .probes import (
    actor_child_tasks,
    child_pids,
    counting_unraisable,
    open_fds,
    pid_alive,
    task_names,
    traced_bytes,
)

__all__ = ["LLMS", "SOAK_CONFIG", "Figures", "run_soak"]

LLMS = ("qwen/qwen3-4b", "google/gemma-3-4b", "openai/gpt-oss-20b")
SETTLED = {State.READY, State.UNLOADED, State.BREAKER_OPEN}
HOLDING_ROOM = {State.VERIFYING, State.READY, State.EXPIRING}

SOAK_CONFIG = Config(
    backend="lmstudio",
    default_model=LLMS[0],
    retry_attempts=2,
    retry_initial_s=0.01,
    retry_max_s=0.05,
    retry_jitter_s=0.01,
    verify_initial_interval_s=0.01,
    verify_max_interval_s=0.05,
    verify_deadline_s=0.5,
    breaker_threshold=3,
    breaker_cooldown_s=1.0,
    catalog_ttl_s=0.5,
    max_loaded_models=2,  # three models: loads must evict the idle one
    request_timeout_s=3.0,
    unload_timeout_s=2.0,
    shutdown_timeout_s=3.0,
    reconcile_interval_s=0.2,
)
"""Small bounds so faults resolve within a round (the plan's defaults are minutes)."""

LOAD_TIMEOUT_S = 1.0
"""The backend's deadline for one ``lms load`` (a hung one is killed then)."""
HTTP_TIMEOUT_S = 2.0
"""The backend's deadline for one control-plane request."""
INFERENCE_TIMEOUT_S = 2.0
"""The inference client's deadline (chaos holds a route or a first token for up to 3 s)."""
ANSWER_BOUND_S = 15.0
"""Longest any one call may take before it counts as unanswered (a violation)."""
SETTLE_BOUND_S = (
    SOAK_CONFIG.verify_deadline_s
    + SOAK_CONFIG.retry_attempts * LOAD_TIMEOUT_S
    + SOAK_CONFIG.unload_timeout_s
)
"""Longest actors may take to settle once the faults stop: a load attempt under way
may run out its attempts, then verify; an expiry may still be unloading."""
MEMORY_TOLERANCE_BYTES = 3 * 1024 * 1024
"""Allowed growth of traced memory over the first round's, at the end of any later round."""

# Allocations of the rig, not the product: the simulator's records and the
# in-memory log sink of tests/conftest.py grow with the number of requests.
_RIG_FILES = ("*/tests/fakes/*", "*/structlog/*", "*/hypercorn/*")


@dataclass
class Figures:
    """What the soak measured; written as JSON for the record."""

    seed: int
    seconds: float
    rounds: int = 0
    wall_s: float = 0.0
    requests_issued: int = 0
    requests_answered: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    faults_injected: Counter[str] = field(default_factory=Counter)
    restarts: int = 0
    backend_loads: Counter[str] = field(default_factory=Counter)
    max_loads_in_flight_per_model: dict[str, int] = field(default_factory=dict)
    lms_runs: int = 0
    settle_s: list[float] = field(default_factory=list)
    traced_bytes_per_round: list[int] = field(default_factory=list)
    fds_per_round: list[int] = field(default_factory=list)
    unraisable: Counter[str] = field(default_factory=Counter)
    violations: list[str] = field(default_factory=list)
    leaks: dict[str, Any] = field(default_factory=dict)

    def json(self) -> dict[str, Any]:
        """A JSON-ready dict (counters sorted, floats rounded)."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        for key in ("outcomes", "faults_injected", "backend_loads", "unraisable"):
            out[key] = dict(sorted(out[key].items()))
        out["wall_s"] = round(self.wall_s, 2)
        out["settle_s"] = [round(s, 3) for s in self.settle_s]
        out["violation_count"] = len(self.violations)
        out["violations"] = self.violations[:50]
        return out


class _Run:
    """One soak: the stack, the clients and the checks."""

    def __init__(
        self,
        figures: Figures,
        sim: Simulator,
        orch: Orchestrator,
        backend: RecordingBackend,
        inference: InferenceClient,
        mcp: Client,
        rng: random.Random,
    ) -> None:
        self.figures = figures
        self.sim = sim
        self.orch = orch
        self.backend = backend
        self.inference = inference
        self.mcp = mcp
        self.rng = rng
        self.pids: set[int] = set()
        self.all_pids: set[int] = set()

    def violation(self, text: str) -> None:
        self.figures.violations.append(text)

    # -- clients --

    async def orchestrator_client(self, until: float, rng: random.Random) -> None:
        ops = (self._chat, self._ensure, self._unload, self._reset, self._status)
        while trio.current_time() < until:
            op = rng.choices(ops, weights=(6, 3, 2, 1, 1))[0]
            model = rng.choice(LLMS)
            self.figures.requests_issued += 1
            try:
                with trio.fail_after(ANSWER_BOUND_S):
                    await op(model)
            except trio.TooSlowError:
                self.violation(f"{op.__name__}({model}) unanswered after {ANSWER_BOUND_S}s")
                continue
            except OrchestratorError as exc:
                outcome = f"error:{type(exc).__name__}"
            except Exception as exc:  # noqa: BLE001 (anything else is what we look for)
                self.violation(f"{op.__name__}({model}) raised {exc!r}")
                continue
            else:
                outcome = "ok"
            self.figures.requests_answered += 1
            self.figures.outcomes[outcome] += 1

    async def _chat(self, model: str) -> None:
        # The product's one inference path: a lease, and one retry on a fresh
        # lease when the backend says the model is not loaded.
        request = ChatRequest(messages=[ChatMessage(role="user", content="hi")], max_tokens=4)
        async with hold_model(self.orch, model, endpoint="chat") as held:
            await held.send(functools.partial(self.inference.chat, request=request))

    async def _ensure(self, model: str) -> None:
        await self.orch.ensure_loaded(model, ttl_s=self.rng.choice((None, 60.0, 1e9)))

    async def _unload(self, model: str) -> None:
        await self.orch.unload(model)

    async def _reset(self, model: str) -> None:
        await self.orch.reset_breaker(model)

    async def _status(self, model: str) -> None:
        assert all(s.ttl_s > 0 for s in self.orch.status())

    async def mcp_client(self, until: float, rng: random.Random) -> None:
        while trio.current_time() < until:
            model = rng.choice(LLMS)
            tool, args = rng.choices(
                (
                    ("chat_completion", {"prompt": "hi", "model": model, "max_tokens": 4}),
                    ("load_model", {"model": model}),
                    ("unload_model", {"model": model}),
                    ("model_status", {}),
                ),
                weights=(6, 2, 1, 1),
            )[0]
            self.figures.requests_issued += 1
            try:
                with trio.fail_after(ANSWER_BOUND_S):
                    result = await self.mcp.call_tool(tool, args)
            except trio.TooSlowError:
                self.violation(f"MCP {tool}({model}) unanswered after {ANSWER_BOUND_S}s")
                continue
            except Exception as exc:  # noqa: BLE001
                self.violation(f"MCP {tool}({model}) raised {exc!r}")
                continue
            self.figures.requests_answered += 1
            if not result.is_error:
                self.figures.outcomes["mcp:ok"] += 1
                continue
            block = result.content[0] if result.content else None
            message = block.text if isinstance(block, TextContent) else repr(block)
            # Our errors keep their text after the SDK's prefix; a crash leaves only the prefix.
            if message.strip() == f"Error executing tool {tool}":
                self.violation(f"MCP {tool}({model}): unexpected exception: {message}")
            self.figures.outcomes["mcp:tool_error"] += 1

    # -- invariants sampled while the chaos runs --

    async def sample(self, chaos: Chaos, until: float) -> None:
        while trio.current_time() < until:
            statuses = self.orch.status()
            # A foreign instance holds room too, but the bound is on what we load (issue 16).
            ours = [s for s in statuses if s.owner is not Owner.FOREIGN]
            holding = sum(s.state in HOLDING_ROOM for s in ours)
            if holding > SOAK_CONFIG.max_loaded_models:
                self.violation(f"{holding} models hold room: {[s.state for s in statuses]}")
            self.check_bound_in_reality(chaos)
            self.pids.update(c.pid for c in self.sim.cli_calls)
            # Sampling cadence on the wall clock (see Chaos.run).
            await trio.sleep(0.01)

    def check_bound_in_reality(self, chaos: Chaos) -> None:
        """The memory bound against what the simulator holds, not our states (issue 16).

        Instances chaos loaded behind our back (a foreign load, a JIT reload) are not
        ours to bound; everything else the simulator holds was loaded by us.
        """
        ours = [i for i in self.sim.loaded() if i not in chaos.not_ours]
        if len(ours) > SOAK_CONFIG.max_loaded_models:
            self.violation(f"the simulator holds {ours} (max_loaded_models=2)")

    def check_foreign_untouched(self) -> None:
        """A model another client loaded is never unloaded by us (issue 16)."""
        rest = [
            c
            for c in self.sim.requests("/api/v1/models/unload", method="POST")
            if isinstance(c.body, dict) and c.body.get("instance_id") == FOREIGN
        ]
        cli = [c for c in self.sim.cli_runs("unload") if FOREIGN in c.argv]
        if rest or cli:
            self.violation(f"the foreign {FOREIGN} was unloaded by us: {rest + cli}")

    # -- the end of a round --

    async def settle(self, *, since: float) -> None:
        """Wait until every actor is settled, counting from when the faults stopped."""
        with trio.move_on_at(since + SETTLE_BOUND_S):
            while True:
                unsettled = [s for s in self.orch.status() if s.state not in SETTLED]
                if not unsettled and not actor_child_tasks():
                    self.figures.settle_s.append(trio.current_time() - since)
                    return
                await trio.sleep(0.01)  # no event exposes actor states; the bound is above
        self.violation(
            f"not settled after {SETTLE_BOUND_S}s: "
            f"{[(s.model, s.state.value) for s in self.orch.status()]}, "
            f"child tasks {actor_child_tasks()}"
        )

    async def recover(self) -> None:
        """Once calm, every model must load again (after closing any open breaker)."""
        for model in LLMS:
            try:
                with trio.fail_after(ANSWER_BOUND_S):
                    await self.orch.reset_breaker(model)
                    status = await self.orch.ensure_loaded(model, timeout_s=ANSWER_BOUND_S / 2)
                if status.state is not State.READY:
                    self.violation(f"{model} recovered to {status.state}")
            except (OrchestratorError, trio.TooSlowError) as exc:
                self.violation(f"{model} did not recover once calm: {exc!r}")
        if any(i.ttl_s is None for i in self.sim.state.instances.values()):
            self.violation(f"a model without a TTL: {self.sim.state.instances}")
        doubles = [i for i in self.sim.loaded() if ":" in i]
        if doubles:
            self.violation(f"a model was loaded twice: {doubles}")

    def measure_memory(self) -> None:
        self.figures.traced_bytes_per_round.append(traced_bytes(_RIG_FILES))

    def check_processes(self, children: set[int]) -> None:
        """Once settled, no ``lms`` run may be alive and no child process left."""
        self.pids.update(c.pid for c in self.sim.cli_calls)
        alive = sorted(p for p in self.pids if pid_alive(p))
        if alive:
            self.violation(f"lms processes alive after the round: {alive}")
        extra = sorted(child_pids() - children)
        if extra:
            self.violation(f"child processes left after the round: {extra}")
        self.all_pids |= self.pids
        self.pids = set(alive)  # checked again next round
        self.figures.fds_per_round.append(open_fds())

    def forget_records(self) -> None:
        """Drop the simulator's per-request records (check_processes has taken the pids)."""
        self.figures.lms_runs += len(self.sim.cli_calls)
        self.sim.calls.clear()
        self.sim.cli_calls.clear()
        self.sim.state.loads.clear()
        self.sim.state.unloads.clear()
        self.sim.state.evictions.clear()


async def _round(run: _Run, chaos: Chaos, seconds: float, clients: int, children: set[int]) -> None:
    until = trio.current_time() + seconds
    async with trio.open_nursery() as nursery:
        nursery.start_soon(chaos.run, until)
        nursery.start_soon(run.sample, chaos, until)
        for n in range(clients):
            rng = random.Random(run.rng.random())
            if n % 4 == 3:
                nursery.start_soon(run.mcp_client, until, rng)
            else:
                nursery.start_soon(run.orchestrator_client, until, rng)
    await run.settle(since=chaos.calmed_at)
    run.check_bound_in_reality(chaos)
    await run.recover()
    run.check_bound_in_reality(chaos)
    run.check_foreign_untouched()
    run.check_processes(children)
    run.forget_records()


async def run_soak(
    tmp_path: Path, *, seconds: float, rounds: int, clients: int, seed: int
) -> Figures:
    """Run the soak and return its figures (violations and leaks included, not raised)."""
    figures = Figures(seed=seed, seconds=seconds)
    rng = random.Random(seed)
    started = time.monotonic()
    gc.collect()
    fds, children, tasks = open_fds(), child_pids(), sum(task_names(include_rig=True).values())
    settings = FrontendSettings(allowed_image_roots=(str(tmp_path),), progress_interval_s=0.05)
    tracemalloc.start()
    try:
        with counting_unraisable(figures.unraisable, figures.violations):
            pids = await _soak(
                figures, rng, settings, seconds=seconds, rounds=rounds, clients=clients
            )
    finally:
        tracemalloc.stop()
    gc.collect()
    traced = figures.traced_bytes_per_round
    peak = max(traced) - traced[0] if traced else 0
    if peak > MEMORY_TOLERANCE_BYTES:
        figures.violations.append(f"traced memory grew by {peak} bytes: {traced}")
    figures.leaks = {
        "tasks": sum(task_names(include_rig=True).values()) - tasks,
        "fds": open_fds() - fds,
        "child_processes": sorted(child_pids() - children),
        "lms_processes_alive": sorted(p for p in pids if pid_alive(p)),
        "traced_growth_bytes": traced[-1] - traced[0] if len(traced) > 1 else 0,
        "traced_peak_growth_bytes": peak,
    }
    figures.wall_s = time.monotonic() - started
    return figures


async def _soak(
    figures: Figures,
    rng: random.Random,
    settings: FrontendSettings,
    *,
    seconds: float,
    rounds: int,
    clients: int,
) -> set[int]:
    """The rounds; returns the pid of every ``lms`` run."""
    children = child_pids()
    async with (
        open_simulator(jit=False) as sim,
        # Shorter than the longest hung route or held first token, so some of those time out.
        InferenceClient(timeout_s=INFERENCE_TIMEOUT_S) as inference,
    ):
        # lms_cli is the fake on PATH (install_fake_lms, done by the test).
        inner = make_backend(
            sim, http_timeout_s=HTTP_TIMEOUT_S, cli_timeout_s=2.0, load_timeout_s=LOAD_TIMEOUT_S
        )
        backend = RecordingBackend(inner, max_ttl_s=SOAK_CONFIG.max_ttl_s)
        chaos = Chaos(sim, LLMS, rng, max_ttl_s=SOAK_CONFIG.max_ttl_s)
        try:
            async with (
                open_orchestrator(backend, SOAK_CONFIG) as orch,
                Client(build_server(orch, settings=settings, inference_client=inference)) as mcp,
            ):
                run = _Run(figures, sim, orch, backend, inference, mcp, rng)
                # The foreign model gets its actor when first seen; make that now, so the
                # task tree compared between rounds does not depend on when chaos loads it.
                await orch.unload(FOREIGN)
                baseline_tasks: Counter[str] | None = None
                for _ in range(rounds):
                    await _round(run, chaos, seconds / rounds, clients, children)
                    figures.rounds += 1
                    run.measure_memory()
                    steady = task_names()
                    if baseline_tasks is None:
                        baseline_tasks = steady
                    elif steady != baseline_tasks:
                        figures.violations.append(
                            f"task tree changed between rounds: +{steady - baseline_tasks} "
                            f"-{baseline_tasks - steady}"
                        )
        finally:
            await backend.aclose()
        figures.faults_injected = chaos.injected
        figures.restarts = len(sim.restarts)
        figures.backend_loads = backend.loads
        figures.max_loads_in_flight_per_model = dict(backend.max_in_flight)
        figures.violations += backend.violations
        # What shutdown left loaded must still carry a TTL (it unloads by itself).
        untimed = [i.identifier for i in sim.state.instances.values() if i.ttl_s is None]
        if untimed:
            figures.violations.append(f"left loaded without a TTL: {untimed}")
        return run.all_pids | {c.pid for c in sim.cli_calls}
