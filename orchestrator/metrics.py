"""Prometheus metrics, declared once, prefix ``lmsorch_``, base units.

Each orchestrator owns a :class:`Metrics` with its own registry, so two
orchestrators in one process (or two tests) never share counters. Label values
are bounded: a ``model`` label is a model an actor was started for (a
validated catalogue key); any other name a caller sends (unknown, invalid,
arbitrarily long) is counted as :data:`OTHER`, so user strings never become
series. The rest are enums. ``docs/metrics.md`` lists every metric.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from orchestrator.lifecycle import Input, State

__all__ = ["OTHER", "Metrics"]

OTHER = "(other)"
"""The ``model`` label of requests naming no managed model (not a valid model name)."""

_SECONDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
# Histograms with a child per model cost about 0.26 KB per bucket per model, so
# each gets only the buckets its range needs: a load takes 0.1 s to minutes, a
# verification milliseconds to its deadline, a wait from microseconds (a lease
# on a READY model) to a whole load.
_LOAD_SECONDS = (0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
_VERIFY_SECONDS = (0.001, 0.01, 0.05, 0.1, 0.5, 1, 5, 30)
_WAIT_SECONDS = (0.0001, 0.001, 0.01, 0.1, 1, 10, 60, 300)


class Metrics:
    """Every metric the orchestrator exports.

    Args:
        registry: where to register; a fresh private registry by default.
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.load_attempts = Counter(
            "lmsorch_model_load_attempts_total",
            "Model loads by model and result (ok, failed, adopted).",
            ["model", "result"],
            registry=r,
        )
        self.load_duration = Histogram(
            "lmsorch_model_load_duration_seconds",
            "Time from the start of a load to the backend's answer.",
            ["model"],
            buckets=_LOAD_SECONDS,
            registry=r,
        )
        self.verify_duration = Histogram(
            "lmsorch_model_verify_duration_seconds",
            "Time from a successful load to the model being listed (READY).",
            ["model"],
            buckets=_VERIFY_SECONDS,
            registry=r,
        )
        self.verification_failures = Counter(
            "lmsorch_verification_failures_total",
            "Verifications that gave up, by model and reason.",
            ["model", "reason"],
            registry=r,
        )
        self.loaded_models = Gauge(
            "lmsorch_loaded_models",
            "Models currently READY.",
            registry=r,
        )
        self.actor_crashes = Counter(
            "lmsorch_actor_crashes_total",
            "Model actors that stopped on an unexpected error (their requests got ActorStopped).",
            ["model"],
            registry=r,
        )
        self.retries = Counter(
            "lmsorch_retry_attempts_total",
            "Retries of transient backend errors, by operation and attempt number.",
            ["operation", "attempt"],
            registry=r,
        )
        # One backend health state, apart from the models' breakers (backend_health.py).
        self.backend_up = Gauge(
            "lmsorch_backend_up",
            "1 while the backend answers, 0 from an unreachable/silent error until it answers.",
            ["backend"],
            registry=r,
        )
        self.backend_outages = Counter(
            "lmsorch_backend_outages_total",
            "Times the backend went from answering to unreachable or silent.",
            ["backend"],
            registry=r,
        )
        self.backend_probes = Counter(
            "lmsorch_backend_probes_total",
            "Health probes of the backend after an outage error, by whether it answered.",
            ["backend", "reachable"],
            registry=r,
        )
        self._states: dict[str, State] = {}
        r.register(_StateCollector(self._states))
        # Derived from the current states when scraped, so it cannot drift from them.
        self.loaded_models.set_function(lambda: list(self._states.values()).count(State.READY))
        self.transitions = Counter(
            "lmsorch_transitions_total",
            "Lifecycle transitions by source, destination and input.",
            ["src", "dst", "input"],
            registry=r,
        )
        self.breaker_opens = Counter(
            "lmsorch_breaker_opens_total",
            "Times a model's circuit breaker opened.",
            ["model"],
            registry=r,
        )
        self.coalesced = Counter(
            "lmsorch_coalesced_waiters_total",
            "Requests that joined a load already in flight instead of starting one.",
            ["model"],
            registry=r,
        )
        self.mailbox_depth = Gauge(
            "lmsorch_mailbox_depth",
            "Messages waiting in a model actor's mailbox.",
            ["model"],
            registry=r,
        )
        self.in_flight = Gauge(
            "lmsorch_in_flight_requests",
            "Leases currently held on a model.",
            ["model"],
            registry=r,
        )
        self.unloads = Counter(
            "lmsorch_unloads_total",
            "Unloads by model and reason (idle, evicted, requested, shutdown).",
            ["model", "reason"],
            registry=r,
        )
        self.wait_duration = Histogram(
            "lmsorch_model_wait_seconds",
            "Time callers spent waiting for a model to be ready, by outcome "
            "(ok, timeout, error, cancelled).",
            ["model", "outcome"],
            buckets=_WAIT_SECONDS,
            registry=r,
        )
        self._wait_children: dict[tuple[str, str], Histogram] = {}
        self.inference_requests = Counter(
            "lmsorch_inference_requests_total",
            "Inference requests by model, endpoint and outcome (ok, lost, error, cancelled).",
            ["model", "endpoint", "outcome"],
            registry=r,
        )
        self.inference_duration = Histogram(
            "lmsorch_inference_duration_seconds",
            "Inference duration (including any wait for the model) by model, endpoint and outcome.",
            ["model", "endpoint", "outcome"],
            buckets=_SECONDS,
            registry=r,
        )
        self.queued = Gauge(
            "lmsorch_scheduler_queued",
            "Requests waiting for their model's turn at a slot, by model.",
            ["model"],
            registry=r,
        )
        self.swaps = Counter(
            "lmsorch_swaps_total",
            "Models evicted to give a slot to another, by evicted model and reason "
            "(drained, fairness_bound, batch_limit, memory, fifo).",
            ["model", "reason"],
            registry=r,
        )
        self.agent_runs = Histogram(
            "lmsorch_agent_run_duration_seconds",
            "Autonomous agent run duration by MCP server (once per server used) and success.",
            ["server", "success"],
            buckets=_SECONDS,
            registry=r,
        )

        self._models: set[str] = set()

    def register_model(self, model: str) -> None:
        """Allow ``model`` as a label value (called when its actor starts) and mark it UNLOADED."""
        self._models.add(model)
        self.set_state(model, State.UNLOADED)

    def model_label(self, model: str) -> str:
        """Return ``model`` if it is a managed model, else :data:`OTHER`."""
        return model if model in self._models else OTHER

    def set_state(self, model: str, state: State) -> None:
        """Record ``state`` as the one current state of ``model``."""
        self._states[model] = state

    def actor_stopped(self, model: str) -> None:
        """Drop ``model``'s state series: no actor manages it any more (until a new one starts)."""
        self._states.pop(model, None)

    def transition(self, model: str, src: State, dst: State, inp: Input) -> None:
        """Count one transition and update the per-model state gauges."""
        self.transitions.labels(src=src.value, dst=dst.value, input=inp.value).inc()
        if src is not dst:
            self.set_state(model, dst)
            if dst is State.BREAKER_OPEN:
                self.breaker_opens.labels(model=model).inc()

    def inference(self, model: str, endpoint: str, outcome: str, duration_s: float) -> None:
        """Count one inference request (``model`` becomes :data:`OTHER` unless managed)."""
        label = self.model_label(model)
        self.inference_requests.labels(model=label, endpoint=endpoint, outcome=outcome).inc()
        self.inference_duration.labels(model=label, endpoint=endpoint, outcome=outcome).observe(
            duration_s
        )

    def waited(self, model: str, outcome: str, duration_s: float) -> None:
        """Record one caller's wait for ``model`` (:data:`OTHER` unless a managed model)."""
        key = (self.model_label(model), outcome)
        child = self._wait_children.get(key)
        if child is None:
            # Every lease records its wait: look the labelled child up once per model and
            # outcome, not per call (children are never removed, so the cache stays right).
            child = self.wait_duration.labels(model=key[0], outcome=outcome)
            self._wait_children[key] = child
        child.observe(duration_s)

    def load_p50(self, models: Iterable[str]) -> dict[str, float]:
        """Return the median load time of each of ``models`` loaded at least once.

        Interpolated in the load-time histogram, whose buckets are coarse (1, 2.5,
        5 s ...): fine for a wait bound that is a multiple of it. One pass over the
        histogram, whatever the number of models.
        """
        wanted = set(models)
        buckets: dict[str, list[tuple[float, float]]] = {}
        for family in self.load_duration.collect():
            for s in family.samples:
                model = s.labels.get("model", "")
                if model in wanted and s.name.endswith("_bucket"):
                    buckets.setdefault(model, []).append((float(s.labels["le"]), s.value))
        return {m: p50 for m, b in buckets.items() if (p50 := _median(b)) is not None}

    def retry(self, operation: str, attempt: int) -> None:
        """Count one retry (matches :data:`orchestrator.retry.OnRetry`)."""
        self.retries.labels(operation=operation, attempt=str(attempt)).inc()

    def exposition(self) -> bytes:
        """Return the registry in the Prometheus text format."""
        return generate_latest(self.registry)


def _median(buckets: list[tuple[float, float]]) -> float | None:
    """The median of a histogram's cumulative ``(upper bound, count)`` buckets, interpolated."""
    total = buckets[-1][1] if buckets else 0.0
    if not total:
        return None
    low, below = 0.0, 0.0
    for high, count in buckets:
        if count >= total / 2:
            if high == float("inf"):
                return low
            return low + (high - low) * (total / 2 - below) / (count - below)
        low, below = high, count
    return low


class _StateCollector(Collector):
    """``lmsorch_model_state``: each model's current state, one-hot, built at scrape time.

    Six gauge children per model would cost about 4.3 KB per model for a value
    that only changes on transitions; reading the current state when scraped
    costs nothing between scrapes.
    """

    def __init__(self, states: dict[str, State]) -> None:
        self._states = states

    def _family(self) -> GaugeMetricFamily:
        return GaugeMetricFamily(
            "lmsorch_model_state",
            "Current lifecycle state per model (one-hot).",
            labels=["model", "state"],
        )

    def describe(self) -> Iterator[GaugeMetricFamily]:
        yield self._family()

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = self._family()
        for model, current in sorted(self._states.items()):
            for state in State:
                family.add_metric([model, state.value], 1 if state is current else 0)
        yield family
