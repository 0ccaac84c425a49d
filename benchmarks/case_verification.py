"""Case 3, verification: from the backend listing a model to ``READY``.

The fake backend's load returns at once, but the model shows up in
``list_loaded`` only after a listing lag (0 is what LM Studio's ``lms load``
and the llama.cpp backend do: the model is listed when the load returns).
The orchestrator polls with short, growing intervals (``verify_initial_interval_s``
doubling up to ``verify_max_interval_s``); the figure is the time from the
model appearing in the list to ``ensure_loaded`` returning READY.

The previous bridge slept a fixed 2 s after ``lms load`` and then checked
once (``reference-bridge.md`` §4.2); for it the same figure is
``2 s - lag`` (and a lag over 2 s fails its check). The ratio is bridge / ours.
"""

from __future__ import annotations

import time

from benchmarks.core import Case, Metric, at_most
from orchestrator import Config, open_orchestrator
from orchestrator.backends.base import LoadedModel
from orchestrator.testing import FakeBackend

MODEL = "bench/verify"
BRIDGE_SLEEP_S = 2.0
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


def _key(lag_s: float) -> str:
    return f"lag_{round(lag_s * 1000)}ms"


async def run(quick: bool) -> dict[str, float]:
    result: dict[str, float] = {}
    for lag_s in LAGS_S[:2] if quick else LAGS_S:
        ours = await _listed_to_ready_s(lag_s)
        bridge = max(BRIDGE_SLEEP_S - lag_s, 0.0)
        result[f"{_key(lag_s)}_ms"] = ours * 1e3
        result[f"{_key(lag_s)}_ratio"] = bridge / max(ours, 1e-6)
    return result


def _metrics() -> tuple[Metric, ...]:
    out: list[Metric] = []
    for lag_s in LAGS_S:
        key = _key(lag_s)
        what = f"listing lag {lag_s * 1000:g} ms"
        out.append(Metric(f"{key}_ms", f"listed -> READY ({what})", "ms", at_most(50)))
        out.append(Metric(f"{key}_ratio", f"fixed 2 s sleep / ours ({what})", "x"))
    return tuple(out)


CASE = Case(
    name="verification",
    title="time from the backend listing a model to READY, vs a fixed 2 s sleep",
    metrics=_metrics(),
    run=run,
    runs=(5, 1),
)
