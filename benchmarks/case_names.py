"""Case 11, model-name validation: the cost of ``validate_model_name`` per call.

Every request validates its model name before anything else (the plan's
"Validation overhead < 0.1ms"). Three kinds of name: a typical catalogue key, a
valid name of the maximum 256 characters, and a refused one (a space: the
checks run in turn and an ``InvalidModelName`` is raised and caught). Each is
timed in batches of calls (a single call is too short for the clock); the figure
is the median over the batches of the time per call.
"""

from __future__ import annotations

import statistics
import time

from benchmarks.core import Case, Metric, at_most
from orchestrator.errors import InvalidModelName
from orchestrator.names import MAX_MODEL_NAME_LENGTH, validate_model_name

NAMES = {
    "typical": "lmstudio-community/qwen3-4b-instruct@q4_k_m",
    "longest": ("publisher/" * 26)[: MAX_MODEL_NAME_LENGTH - 1] + "m",
    "refused": "qwen/qwen3 4b",
}


def _per_call_us(name: str, calls: int) -> float:
    clock = time.perf_counter_ns
    started = clock()
    for _ in range(calls):
        try:  # noqa: SIM105 (contextlib.suppress would cost as much as a valid name's check)
            validate_model_name(name)
        except InvalidModelName:
            pass
    return (clock() - started) / calls / 1e3


async def run(quick: bool) -> dict[str, float]:
    batches, calls = (3, 2_000) if quick else (15, 20_000)
    assert len(NAMES["longest"]) == MAX_MODEL_NAME_LENGTH
    samples: dict[str, list[float]] = {kind: [] for kind in NAMES}
    for _ in range(batches):  # the kinds in turn, so machine noise hits them alike
        for kind, name in NAMES.items():
            samples[kind].append(_per_call_us(name, calls))
    return {f"{kind}_us": statistics.median(values) for kind, values in samples.items()}


CASE = Case(
    name="names",
    title="validate_model_name per call: typical, 256 characters, refused",
    metrics=(
        Metric("typical_us", "valid, typical key (43 characters)", "us", at_most(100)),
        Metric("longest_us", "valid, 256 characters", "us", at_most(100)),
        Metric("refused_us", "refused (a space), exception raised and caught", "us", at_most(100)),
    ),
    run=run,
    runs=(5, 1),
    notes="Median per-call time over batches of 20,000 calls (2,000 in --quick).",
)
