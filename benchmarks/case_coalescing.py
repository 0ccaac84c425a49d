"""Case 1, coalescing: 1,000 concurrent requests for one cold model.

The fake backend's load takes a fixed time; the figures are how many loads
the backend saw (target: exactly one), the time until every request was
answered minus that load time (the orchestrator's own cost for the burst),
and its two parts: from the first request to the load starting, and the
fan-out from the load finishing to the last answer.

Two configurations: the default one (``mailbox_size`` 256), whose admission
control refuses part of a burst that arrives all at once, and one whose
mailbox holds the whole burst, which shows the coalescing itself.
"""

from __future__ import annotations

import time

import trio

from benchmarks.core import Case, Metric, exactly
from orchestrator import Config, OrchestratorError, open_orchestrator
from orchestrator.testing import FakeBackend

MODEL = "bench/cold"
LOAD_S = 0.2


class _TimedBackend(FakeBackend):
    """A FakeBackend that records when its (one) load really started and ended."""

    load_started = 0.0
    load_ended = 0.0

    async def load(
        self, key: str, *, identifier: str, ttl_s: float, context_length: int | None = None
    ) -> None:
        self.load_started = time.perf_counter()
        await super().load(key, identifier=identifier, ttl_s=ttl_s, context_length=context_length)
        self.load_ended = time.perf_counter()


class _Burst:
    """What one burst produced."""

    def __init__(self, backend: _TimedBackend) -> None:
        self.backend = backend
        self.answered = 0
        self.refused = 0
        self.started = 0.0
        self.last_answer = 0.0


async def _burst(count: int, config: Config) -> _Burst:
    backend = _TimedBackend([MODEL])
    backend.script(MODEL).load_delay_s = LOAD_S
    burst = _Burst(backend)

    async def request() -> None:
        try:
            await orch.ensure_loaded(MODEL)
        except OrchestratorError:
            burst.refused += 1
        else:
            burst.answered += 1
        burst.last_answer = time.perf_counter()

    async with open_orchestrator(backend, config) as orch:
        burst.started = time.perf_counter()
        async with trio.open_nursery() as nursery:
            for _ in range(count):
                nursery.start_soon(request)
    return burst


async def run(quick: bool) -> dict[str, float]:
    count = 200 if quick else 1_000
    default = await _burst(count, Config())
    big = await _burst(count, Config(mailbox_size=max(256, 2 * count)))
    backend = big.backend
    load_s = backend.load_ended - backend.load_started
    return {
        "loads": float(backend.count("load")),
        # overhead_ms = to_load_ms + fanout_ms: the burst's cost before the load and after it.
        "overhead_ms": (big.last_answer - big.started - load_s) * 1e3,
        "to_load_ms": (backend.load_started - big.started) * 1e3,
        "fanout_ms": (big.last_answer - backend.load_ended) * 1e3,
        "answered": float(big.answered),
        "refused": float(big.refused),
        "loads_default": float(default.backend.count("load")),
        "answered_default": float(default.answered),
        "refused_default": float(default.refused),
    }


CASE = Case(
    name="coalescing",
    title="1,000 concurrent requests for one cold model (FakeBackend, 0.2 s load)",
    metrics=(
        Metric("loads", "backend loads", "", exactly(1)),
        Metric("overhead_ms", "all answered minus load time", "ms"),
        Metric("to_load_ms", "  of which first request to load start", "ms"),
        Metric("fanout_ms", "  of which load end to last answer", "ms"),
        Metric("answered", "answered (mailbox holds the burst)", ""),
        Metric("refused", "refused (mailbox holds the burst)", "", exactly(0)),
        Metric("loads_default", "backend loads (default mailbox_size 256)", "", exactly(1)),
        Metric("answered_default", "answered (default mailbox_size 256)", ""),
        Metric("refused_default", "refused Overloaded (default mailbox_size 256)", "", exactly(0)),
    ),
    run=run,
    runs=(5, 1),
)
