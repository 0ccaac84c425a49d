"""Case 3, verification: from the backend listing a model to ``READY``.

The fake backend's load returns at once, but the model shows up in
``list_loaded`` only after a listing lag (0 is what LM Studio's ``lms load``
and the llama.cpp backend do: the model is listed when the load returns).
The orchestrator polls with short, growing intervals (``verify_initial_interval_s``
doubling up to ``verify_max_interval_s``); the figure is the time from the
model appearing in the list to ``ensure_loaded`` returning READY.

The previous bridge slept a fixed 2 s after ``lms load`` and then checked the
loaded list once (``reference-bridge.md`` §4.2). That verifier runs here too,
against the same lagging backend, and its time from listed to confirmed is
measured the same way; the ratio is bridge / ours, both measured. Quick mode
sleeps 0.2 s instead (the ``bridge_sleep_s`` figure says which).
"""

from __future__ import annotations

import time

import trio

from benchmarks.core import Case, Metric, at_most
from orchestrator import Config, open_orchestrator
from orchestrator.backends.base import LoadedModel
from orchestrator.testing import FakeBackend

MODEL = "bench/verify"
BRIDGE_SLEEP_S = 2.0
QUICK_BRIDGE_SLEEP_S = 0.2  # still longer than the quick lags: the bridge's check must pass
LAGS_S = (0.0, 0.1, 0.5)


class _LaggingBackend(FakeBackend):
    """Lists a loaded model only ``lag_s`` after its load returned."""

    def __init__(self, lag_s: float) -> None:
        super().__init__([MODEL])
        self.lag_s = lag_s
        self.listed_at: float | None = None

    async def load(
        self, key: str, *, identifier: str, ttl_s: float, context_length: int | None = None
    ) -> None:
        await super().load(key, identifier=identifier, ttl_s=ttl_s, context_length=context_length)
        self.listed_at = time.perf_counter() + self.lag_s

    async def list_loaded(self) -> list[LoadedModel]:
        loaded = await super().list_loaded()
        if self.listed_at is None or time.perf_counter() < self.listed_at:
            return [x for x in loaded if x.identifier != MODEL]
        return loaded


async def _listed_to_ready_s(lag_s: float) -> float:
    backend = _LaggingBackend(lag_s)
    async with open_orchestrator(backend, Config()) as orch:
        await orch.ensure_loaded(MODEL)
        ready = time.perf_counter()
    assert backend.listed_at is not None
    return ready - backend.listed_at


async def _bridge_listed_to_confirmed_s(lag_s: float, sleep_s: float) -> float:
    """The previous bridge's verification: load, sleep ``sleep_s``, check the list once."""
    backend = _LaggingBackend(lag_s)
    await backend.load(MODEL, identifier=MODEL, ttl_s=600)
    # trio.sleep where the bridge blocked in time.sleep: the same wait, and the other
    # lags' verifiers (run concurrently, see run()) are not held up by it.
    await trio.sleep(sleep_s)
    listed = [x.identifier for x in await backend.list_loaded()]
    confirmed = time.perf_counter()
    if MODEL not in listed:  # the bridge would have raised "...memory pressure."
        raise AssertionError(f"the fixed-sleep verifier missed {MODEL} after a {lag_s} s lag")
    assert backend.listed_at is not None
    return confirmed - backend.listed_at


def _key(lag_s: float) -> str:
    return f"lag_{round(lag_s * 1000)}ms"


async def run(quick: bool) -> dict[str, float]:
    lags = LAGS_S[:2] if quick else LAGS_S
    sleep_s = QUICK_BRIDGE_SLEEP_S if quick else BRIDGE_SLEEP_S
    ours = {lag_s: await _listed_to_ready_s(lag_s) for lag_s in lags}
    bridge: dict[float, float] = {}

    async def measure_bridge(lag_s: float) -> None:
        bridge[lag_s] = await _bridge_listed_to_confirmed_s(lag_s, sleep_s)

    # The bridge's verifiers all sleep, so they run side by side: one sleep per repetition
    # instead of one per lag keeps the case's time bounded. Ours ran alone, before them.
    async with trio.open_nursery() as nursery:
        for lag_s in lags:
            nursery.start_soon(measure_bridge, lag_s)
    result = {"bridge_sleep_s": sleep_s}
    for lag_s in lags:
        result[f"{_key(lag_s)}_ms"] = ours[lag_s] * 1e3
        result[f"{_key(lag_s)}_bridge_ms"] = bridge[lag_s] * 1e3
        result[f"{_key(lag_s)}_ratio"] = bridge[lag_s] / max(ours[lag_s], 1e-6)
    return result


def _metrics() -> tuple[Metric, ...]:
    # The sleep is a figure of its own, so that a table says which one its ratios used.
    out = [Metric("bridge_sleep_s", "fixed-sleep verifier: its sleep (shorter in --quick)", "s")]
    for lag_s in LAGS_S:
        key = _key(lag_s)
        what = f"listing lag {lag_s * 1000:g} ms"
        out.append(Metric(f"{key}_ms", f"listed -> READY ({what})", "ms", at_most(50)))
        out.append(Metric(f"{key}_bridge_ms", f"listed -> confirmed, fixed sleep ({what})", "ms"))
        out.append(Metric(f"{key}_ratio", f"fixed sleep / ours, both measured ({what})", "x"))
    return tuple(out)


CASE = Case(
    name="verification",
    title="time from the backend listing a model to READY, vs a fixed-sleep verifier",
    metrics=_metrics(),
    run=run,
    runs=(5, 1),
)
