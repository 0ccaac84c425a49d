"""Properties of the slot scheduling policy (issue 22), over a discrete-event model of a backend.

The harness below is the backend's truth: models load, serve and unload over
time, and the policy (:func:`plan`) is asked what to do after every event. Every
request must be served; under ``swap_aware`` within its wait bound plus the
cost of the swaps that may be ahead of it; never more models loaded than allowed;
never an eviction of a model with work in flight; and a model with queued work
is swapped out only once a waiter reached its bound or it ran its batches.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from typing import Literal

from hypothesis import given
from hypothesis import strategies as st

from orchestrator.swap_policy import ModelView, Plan, SchedLimits, SwapReason, plan, wait_bound

UNLOAD_S = 0.25


@dataclass
class Request:
    arrival: float
    model: str
    service_s: float
    started: float | None = None


@dataclass
class Model:
    name: str
    load_s: float
    size: int
    state: Literal["out", "loading", "ready", "unloading"] = "out"
    queued: list[Request] = field(default_factory=list)
    admitted: list[Request] = field(default_factory=list)  # waiting for the load
    serving: int = 0
    last_used: float = 0.0
    batches: int = 0
    closed: SwapReason | None = None


class Harness:
    """Runs requests through ``plan`` on a simulated backend; records what happened."""

    def __init__(self, models: list[Model], limits: SchedLimits) -> None:
        self.models = {m.name: m for m in models}
        self.limits = limits
        self.events: list[tuple[float, int, str, str]] = []  # (time, seq, kind, model)
        self.seq = 0
        self.now = 0.0
        self.served: list[Request] = []
        self.overtaken = 0  # fifo: requests admitted while an older one stayed queued
        self.evictions: list[tuple[ModelView, SwapReason, list[ModelView]]] = []
        self.closures: list[tuple[str, SwapReason, list[ModelView], float]] = []
        self.max_loaded = 0

    def at(self, when: float, kind: str, model: str) -> None:
        self.seq += 1
        heapq.heappush(self.events, (when, self.seq, kind, model))

    def run(self, requests: list[Request]) -> None:
        for r in requests:
            self.at(r.arrival, "arrive", r.model)
        pending = sorted(requests, key=lambda r: r.arrival)
        wake: float | None = None
        while self.events or wake is not None:
            if self.events and (wake is None or self.events[0][0] <= wake):
                self.now, _, kind, name = heapq.heappop(self.events)
                self.handle(kind, self.models[name], pending)
            else:
                assert wake is not None
                self.now = wake
            wake = self.decide()
            if wake is not None and not self.events and not self.waiting():
                wake = None

    def waiting(self) -> bool:
        return any(m.queued for m in self.models.values())

    def handle(self, kind: str, model: Model, pending: list[Request]) -> None:
        match kind:
            case "arrive":
                request = next(r for r in pending if r.model == model.name)
                pending.remove(request)
                model.queued.append(request)
            case "loaded":
                model.state = "ready"
                for request in model.admitted:
                    self.start(model, request)
                model.admitted = []
            case "done":
                model.serving -= 1
                model.last_used = self.now
            case "unloaded":
                model.state = "out"
            case _:
                raise AssertionError(kind)

    def start(self, model: Model, request: Request) -> None:
        request.started = self.now
        self.served.append(request)
        model.serving += 1
        self.at(self.now + request.service_s, "done", model.name)

    def views(self) -> list[ModelView]:
        return [
            ModelView(
                model=m.name,
                holds=m.state != "out",
                serving=m.state in ("loading", "ready"),
                idle=m.state == "ready" and not m.serving and not m.admitted,
                arrivals=tuple(r.arrival for r in m.queued),
                load_s=m.load_s,
                size_bytes=m.size,
                batches=m.batches,
                closed=m.closed,
                last_used_at=m.last_used,
            )
            for m in self.models.values()
        ]

    def decide(self) -> float | None:
        views = self.views()
        decided = plan(views, self.limits, self.now)
        self.apply(decided, views)
        loaded = [m for m in self.models.values() if m.state != "out"]
        assert len(loaded) <= self.limits.max_models
        budget = self.limits.budget_bytes
        assert budget is None or len(loaded) == 1 or sum(m.size for m in loaded) <= budget
        self.max_loaded = max(self.max_loaded, len(loaded))
        return decided.wake_at

    def apply(self, decided: Plan, views: list[ModelView]) -> None:
        others_wait = any(v.arrivals and not v.holds for v in views)
        for name in decided.grant:
            model = self.models[name]
            assert model.state == "out"
            model.state, model.batches = "loading", 0
            self.at(self.now + model.load_s, "loaded", name)
        for name, count in decided.admit.items():
            model = self.models[name]
            if others_wait and name not in decided.grant:
                model.batches += 1
            batch, model.queued = model.queued[:count], model.queued[count:]
            for request in batch:
                if model.state == "ready":
                    self.start(model, request)
                else:
                    model.admitted.append(request)
        admitted = [v.arrivals[n - 1] for v in views if (n := decided.admit.get(v.model, 0))]
        queued = [r.arrival for m in self.models.values() for r in m.queued]
        if admitted and queued and max(admitted) > min(queued):
            self.overtaken += 1
        if not others_wait:
            for model in self.models.values():
                model.batches = 0
        for name, reason in decided.closed.items():
            if self.models[name].closed is None:
                self.closures.append((name, reason, views, self.now))
        for model in self.models.values():
            model.closed = decided.closed.get(model.name)
        if decided.evict is not None:
            assert decided.reason is not None
            victim = self.models[decided.evict]
            view = next(v for v in views if v.model == victim.name)
            self.evictions.append((view, decided.reason, views))
            assert view.idle, "evicted a model with work in flight"
            victim.state = "unloading"
            self.at(self.now + UNLOAD_S, "unloaded", victim.name)


@st.composite
def scenarios(
    draw: st.DrawFn, kind: Literal["swap_aware", "fifo"]
) -> tuple[Harness, list[Request]]:
    count = draw(st.integers(2, 4))
    names = [f"m{i}" for i in range(count)]
    models = [Model(name, draw(st.floats(0.1, 3.0)), draw(st.integers(1, 10))) for name in names]
    limits = SchedLimits(
        kind=kind,
        max_models=draw(st.integers(1, count - 1)),
        budget_bytes=draw(st.none() | st.integers(10, 25)),
        max_wait_s=draw(st.none() | st.floats(0.5, 10.0)),
        wait_load_factor=draw(st.floats(0.0, 5.0)),
        wait_floor_s=draw(st.floats(0.5, 5.0)),
        max_batches=draw(st.integers(1, 60)),
    )
    # A hot model: a dense stream mostly for m0, which never drains on its own.
    hot = draw(st.booleans())
    choices = [names[0]] * 4 + names if hot else names
    gaps = draw(st.lists(st.floats(0.0, 0.3 if hot else 1.5), min_size=1, max_size=60))
    requests, now = [], 0.0
    for gap in gaps:
        now += gap
        service = draw(st.floats(0.05, 1.0))
        requests.append(Request(now, draw(st.sampled_from(choices)), service))
    return Harness(models, limits), requests


def worst_wait(harness: Harness, model: str) -> float:
    """The bound plus the swaps that may be ahead: each costs a drain, an unload, a load."""
    models = harness.models.values()
    view = next(v for v in harness.views() if v.model == model)
    swap = max(m.load_s for m in models) + 1.0 + UNLOAD_S  # services last at most 1 s
    return wait_bound(view, harness.limits) + (len(models) + harness.limits.max_models) * swap


@given(scenarios("swap_aware"))
def test_swap_aware_serves_everyone_within_the_bound(
    scenario: tuple[Harness, list[Request]],
) -> None:
    harness, requests = scenario
    harness.run(requests)
    assert len(harness.served) == len(requests)  # nobody starves
    for request in requests:
        assert request.started is not None
        wait = request.started - request.arrival
        assert wait <= worst_wait(harness, request.model) + 1e-6, (request, wait)


@given(scenarios("swap_aware"))
def test_swap_aware_swaps_out_queued_work_only_at_a_bound(
    scenario: tuple[Harness, list[Request]],
) -> None:
    harness, requests = scenario
    harness.run(requests)
    limits = harness.limits
    for view, reason, _views in harness.evictions:
        if view.arrivals:  # it still had work waiting: only a closed model goes
            assert view.closed is not None
            assert reason in (SwapReason.FAIRNESS_BOUND, SwapReason.BATCH_LIMIT)
        else:
            assert reason in (SwapReason.DRAINED, SwapReason.MEMORY)
    for name, reason, views, now in harness.closures:
        outside = [v for v in views if v.arrivals and not v.holds]
        assert outside, "closed a model while nobody waited for a slot"
        closed = next(v for v in views if v.model == name)
        if reason is SwapReason.BATCH_LIMIT:
            assert closed.batches >= limits.max_batches
        else:
            # Someone waiting for a slot had reached its bound when the swap was forced.
            assert reason is SwapReason.FAIRNESS_BOUND
            assert any(v.arrivals[0] + wait_bound(v, limits) <= now for v in outside)


@given(scenarios("fifo"))
def test_fifo_serves_in_arrival_order(scenario: tuple[Harness, list[Request]]) -> None:
    harness, requests = scenario
    harness.run(requests)
    assert len(harness.served) == len(requests)
    assert harness.overtaken == 0
    for view, _reason, _views in harness.evictions:
        assert view.idle


@given(
    gap=st.floats(0.05, 0.5),
    service=st.floats(0.5, 1.0),
    load=st.floats(0.1, 3.0),
    bound=st.floats(0.5, 10.0),
    cold_at=st.floats(0.0, 20.0),
)
def test_a_model_kept_busy_is_swapped_out_at_the_waiters_bound(
    gap: float, service: float, load: float, bound: float, cold_at: float
) -> None:
    # m0 gets a request every `gap` (each lasting longer than the gap: it never drains
    # on its own); m1's one request must still be served within its bound plus one swap.
    models = [Model("m0", load, 1), Model("m1", load, 1)]
    limits = SchedLimits(max_models=1, max_wait_s=bound, max_batches=1_000_000)
    harness = Harness(models, limits)
    stream = [Request(i * gap, "m0", service) for i in range(int(40 / gap))]
    cold = Request(cold_at, "m1", service)
    harness.run([*stream, cold])
    assert cold.started is not None
    first_load = load if cold_at < load else 0.0  # m0's own first load may be under way
    assert cold.started - cold.arrival <= bound + first_load + service + UNLOAD_S + load + 1e-6
